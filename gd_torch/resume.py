"""Resuming: ``--ckpt_path last`` finds the run to resume, and a checkpoint passes its checks before a
run resumes from it: a file Lightning wrote, of this model (the same parameter names and shapes,
standardized or not alike) and of this optimizer. Said before anything is written, naming what does
not fit."""

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from gd_torch.data import Features
from gd_torch.errors import ConfigError, one_line
from gd_torch.schema import Schema

SGD = "torch.optim.SGD"


LAST = "last"  # --ckpt_path last: Lightning's own spelling for "the latest checkpoint"


def latest_run(root: Path) -> Path | None:
    """The run directory under ``root`` (``<save_dir>/<name>``) whose ``checkpoints/last.ckpt`` was
    written last, or None when no run there has one."""
    checkpoints = [path for path in root.glob("*/checkpoints/last.ckpt") if path.is_file()]
    if not checkpoints:
        return None
    return max(checkpoints, key=lambda path: path.stat().st_mtime_ns).parent.parent


def check_checkpoint(
    path: Path, model: nn.Module, features: Features | None, optimizer: str | None, schema: Schema | None = None
) -> int:
    """Raise :class:`ConfigError` unless ``path`` can resume a run of ``model`` on data with ``features``
    and the optimizer of class path ``optimizer`` (None: SGD), its columns and categories as the data's
    ``schema`` has them. Returns the step it was saved at."""
    try:
        # weights_only: a checkpoint may come from anyone, and unpickling runs any code a file carries;
        # a Lightning checkpoint of this project holds tensors and plain values only.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        carried = re.search(r"GLOBAL (\S+)", str(error))  # it carries something to call: refused, nothing run
        if carried is None:  # junk, or a truncated file
            raise ConfigError(f"ckpt_path: {path} cannot be read as a checkpoint: {one_line(str(error))}") from None
        raise ConfigError(
            f"ckpt_path: {path} is refused: it carries code to run when it is read ({carried[1]}); a checkpoint is"
            " read with torch.load(weights_only=True), tensors and plain values only, and nothing in it was run"
        ) from None
    except Exception as error:  # a file the installed versions cannot read
        reason = one_line(str(error)) or type(error).__name__
        raise ConfigError(f"ckpt_path: {path} cannot be read as a checkpoint: {reason}") from None
    if not (isinstance(checkpoint, dict) and "state_dict" in checkpoint and "pytorch-lightning_version" in checkpoint):
        raise ConfigError(f"ckpt_path: {path} is not a Lightning checkpoint (no state_dict and version in it)")
    expected = {f"model.{name}": tuple(t.shape) for name, t in model.state_dict().items()}
    if features is not None and features.mean is not None:
        expected |= {"x_mean": tuple(features.mean.shape), "x_std": tuple(features.std.shape)}
    found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
    problems = [
        f"{what} {listed(names)}"
        for what, names in (
            ("missing", [n for n in expected if n not in found]),
            ("unexpected", [n for n in found if n not in expected]),
        )  # fmt: skip
        if names
    ]
    shapes = [
        f"{n} is {found[n]} there, {expected[n]} here" for n in expected if n in found and found[n] != expected[n]
    ]
    problems += shapes[:3]
    standardization = {"x_mean", "x_std"}
    if len(problems) == 1 and (standardization <= set(expected)) != (standardization <= set(found)):
        raise ConfigError(
            f"ckpt_path: {path} was trained {'with' if 'x_mean' in found else 'without'} standardized features;"
            " resume with the data's standardize as it was"
        )
    if problems:
        raise ConfigError(f"ckpt_path: {path} is of another model: {'; '.join(problems)}")
    if schema is not None and checkpoint.get("schema"):  # the columns and categories it was trained on
        trained_on = Schema.from_dict(checkpoint["schema"])
        for what, there, here in (
            ("features", trained_on.feature_names, schema.feature_names),
            ("targets", trained_on.target_names, schema.target_names),
        ):
            if there != here:
                differences = [
                    f"{side} {listed(names)}"
                    for side, names in (
                        ("only in the checkpoint:", [n for n in there if n not in here]),
                        ("only in this run's data:", [n for n in here if n not in there]),
                    )
                    if names
                ] or ["the same, in another order"]
                raise ConfigError(f"ckpt_path: {path} was trained on other {what}: {'; '.join(differences)}")
    theirs = (checkpoint.get("hyper_parameters", {}).get("optimizer") or {}).get("class_path", SGD)
    ours = optimizer or SGD
    if theirs != ours:
        raise ConfigError(f"ckpt_path: {path} was trained with {theirs}; this run's optimizer is {ours}")
    return checkpoint.get("global_step", 0)


def listed(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
