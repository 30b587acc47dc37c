"""Resuming: ``--ckpt_path last`` finds the run to resume, and a checkpoint passes its checks before a
run resumes from it: a file Lightning wrote, of this model (the same parameter names and shapes,
standardized or not alike) and of this optimizer. Said before anything is written, naming what does
not fit."""

from pathlib import Path

import torch
import yaml
from torch import nn

from gd_torch.data import Features
from gd_torch.errors import ConfigError
from gd_torch.rebuild import read_checkpoint
from gd_torch.schema import Schema

SGD = "torch.optim.SGD"


LAST = "last"  # --ckpt_path last: Lightning's own spelling for "the latest checkpoint"


# What makes a run "of this config" for --ckpt_path last: the same model and data. The learning rate,
# the trainer's settings (max_steps above all) and the callbacks may change on a resume.
SAME_CONFIG = ("model", "data")


def latest_run(root: Path, config: dict, max_steps: int) -> tuple[Path | None, str]:
    """``--ckpt_path last``: the run directory under ``root`` (``<save_dir>/<name>``) to go on with, and
    the line to say. It is the run of this ``config`` (the same model and data sections) whose
    ``checkpoints/last.ckpt`` was written last, provided it has steps left before ``max_steps``; else
    None, and the line says why a new run starts."""
    checkpoints = sorted(
        (path for path in root.glob("*/checkpoints/last.ckpt") if path.is_file()),
        key=lambda path: path.stat().st_mtime_ns,
        reverse=True,
    )
    for checkpoint in checkpoints:
        run_dir = checkpoint.parent.parent
        if not same_config(run_dir / "config.yaml", config):
            continue
        step = saved_step(checkpoint)
        if 0 <= max_steps <= step:
            return None, (
                f"Nothing to resume: the latest run of this config, {run_dir}, reached step {step} and"
                f" trainer.max_steps is {max_steps}; starting a new run (a larger max_steps goes on with it)"
            )
        return run_dir, f"Resuming {run_dir} from its last checkpoint (step {step})"
    others = f" ({len(checkpoints)} of other configs)" if checkpoints else ""
    return None, f"No run of this config in {root} to resume{others}: starting a new one"


def same_config(path: Path, config: dict) -> bool:
    """Whether the run's saved config has this config's model and data sections."""
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(saved, dict):
        return False
    return all(comparable(saved.get(key), key) == comparable(config.get(key), key) for key in SAME_CONFIG)


def comparable(section, key: str):
    """A section as compared: the model's learning rate left out (a resume may change it: it is applied)."""
    if key == "model" and isinstance(section, dict):
        return {name: value for name, value in section.items() if name != "learning_rate"}
    return section


def saved_step(checkpoint: Path) -> int:
    """The step a checkpoint was saved at (read without running anything from it), -1 if unreadable."""
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))
    except Exception:  # checked, and refused with its reason, when the run resumes from it
        return -1


def check_checkpoint(
    path: Path, model: nn.Module, features: Features | None, optimizer: str | None, schema: Schema | None = None
) -> int:
    """Raise :class:`ConfigError` unless ``path`` can resume a run of ``model`` on data with ``features``
    and the optimizer of class path ``optimizer`` (None: SGD), its columns and categories as the data's
    ``schema`` has them. Returns the step it was saved at and the learning rate it trained at (None
    when not a number: ``auto`` resolved at its start, or a checkpoint without it)."""
    checkpoint = read_checkpoint(path, "ckpt_path")
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
    rate = checkpoint.get("hyper_parameters", {}).get("learning_rate")
    return checkpoint.get("global_step", 0), rate if isinstance(rate, int | float) else None


def listed(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
