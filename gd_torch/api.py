"""Python entry points: ``fit`` trains and returns the run, ``load_run`` gives a run's trained model."""

import copy
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import nn

from gd_torch.errors import ConfigError
from gd_torch.models import Predictor
from gd_torch.rebuild import model_of, module_arguments, read_checkpoint, saved_run


def load_run(
    run_dir: str | Path,
    checkpoint: str = "last",
    *,
    allow: Iterable[str | type[nn.Module]] = (),
    model: nn.Module | None = None,
) -> Predictor:
    """The trained model of a run: an ``nn.Module`` in eval mode on the CPU that maps raw x (shape
    (N,) for one feature, (N, F) for several, columns in the order of ``feature_names``) to one
    prediction per point, in the target's units ((N, k) for k targets, named by ``target_names``).
    When the run standardized its features, the training split's statistics are folded in; the
    model itself is ``.model``. ``.table({column: values})`` takes the raw table instead: x's columns
    by name, a categorical one's cells as its categories (the run's ``schema``).

    It is built from the run's checkpoint, whose hyperparameters hold the model section of the run's
    ``config.yaml``. ``checkpoint`` is ``"last"`` (``checkpoints/last.ckpt``), ``"best"`` (the best one
    of a ``ModelCheckpoint`` that monitors a value, e.g. ``val/loss``) or the path of a checkpoint file.

    A run directory may come from anyone, so the checkpoint is data: it builds only the project's
    models and ``torch.nn`` modules, with plain values (numbers, strings, booleans, lists of them) for
    their arguments. A class of your own is built when ``allow`` names it (``allow=["my_models.Parabola"]``,
    or the class itself); or hand ``model`` over, built as the run built it, and the checkpoint's weights
    are loaded into it. Anything else is refused before anything it names is imported or called.

    Raises :class:`ConfigError` when there is no such run or checkpoint, or its model is refused.
    """
    from gd_torch.module import GradientDescent  # Lightning: imported when a run is loaded

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"run_dir: {run_dir} is not a run directory (it has no config.yaml)")
    path = checkpoint_path(run_dir, checkpoint)
    saved = saved_run(path)
    model = model if model is not None else model_of(saved, allow)
    try:
        module = GradientDescent(model, **module_arguments(saved))
        # What Lightning's load_from_checkpoint does once the module is built: its hook, then the weights.
        module.on_load_checkpoint(saved)
        module.load_state_dict(saved["state_dict"])
    except Exception as error:  # weights of another model, statistics of another shape
        raise ConfigError(f"checkpoint: cannot load {path}: {' '.join(str(error).split())}") from None
    return module.predictor().eval()


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """The file ``checkpoint`` names in ``run_dir``: ``last``, ``best`` or a path."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if checkpoint not in ("last", "best"):
        path = Path(checkpoint)
        if not path.is_file():
            raise ConfigError(f"checkpoint: no such file: {path} (use 'last', 'best' or a checkpoint's path)")
        return path
    if not last.is_file():
        raise ConfigError(f"checkpoint: {run_dir} has no {last.relative_to(run_dir)}; did the run start training?")
    if checkpoint == "last":
        return last
    # The monitoring ModelCheckpoint's state, as the final checkpoint recorded it.
    states = read_checkpoint(last, "checkpoint").get("callbacks", {})  # runs no code from it
    best = {key: state["best_model_path"] for key, state in states.items() if state.get("best_model_path")}
    if len(best) != 1:
        found = "none" if not best else f"{len(best)}: {', '.join(best)}"
        raise ConfigError(
            f"checkpoint: 'best' needs exactly one ModelCheckpoint with a monitor in the run's callbacks"
            f" (e.g. monitor: val/loss); {run_dir} has {found}"
        )
    (recorded,) = best.values()
    # The recorded path is as the run saw it (maybe relative to where it ran): look in this run directory.
    path = run_dir / "checkpoints" / Path(recorded).name
    if not path.is_file():
        raise ConfigError(f"checkpoint: the best checkpoint {Path(recorded).name} is not in {path.parent}")
    return path


@dataclass
class Run:
    """A finished run, as ``fit`` returns it.

    Attributes:
        exit_code: What the command would exit with: 0 trained, 1 diverged or failed, 130 interrupted (143
            terminated, 129 hung up).
        run_dir: The run directory (``config.yaml``, ``summary.json``, checkpoints, pictures).
        summary: ``summary.json`` as a dict (steps, params, final_loss, metrics, curvature, stop_reason, ...).
        model: The trained model as ``load_run`` gives it (raw x in, one prediction per point out, on
            the CPU, in eval mode; a copy of the final parameters), or None when the run failed.
        history: Every scalar the run logged: tag -> [(step, value), ...], as every logger got them.

    All of it is what the run holds in memory when it ends: nothing is read back from its files.
    """

    exit_code: int
    run_dir: Path
    summary: dict
    model: Predictor | None
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def fit(config: str | Path | dict, *flags: str, data: Any = None) -> Run:
    """Train as ``python scripts/train.py --config CONFIG FLAGS...`` does, in this process, and return
    the run. ``config`` is a YAML file or a dict of the same sections; ``flags`` are the command's
    (``"--model.learning_rate=0.05"`` or ``"--model.learning_rate", "0.05"``). It can be called again
    and again in one process, as in a notebook.

    ``data`` is a table in memory to train on instead of a file: a pandas or polars DataFrame, a
    pyarrow Table, a dict of columns, or ``(x, y)`` arrays or tensors (x's columns are then ``x`` or
    ``x1``, ``x2``, ...; y's ``y`` or ``y1``, ...). It is read as ``gd_torch.data.TablePoints`` reads a
    file: the config's ``data`` section gives ``x``, ``y``, ``categorical``, ``missing``,
    ``standardize`` and the split, and a pandas ``category`` column is categorical. Or it is a
    ``LightningDataModule`` of your own, made in the notebook: the run takes it as the command takes
    one its config names (the config's ``data`` section is not used).

    Raises :class:`ConfigError`, whose message is the command's ``error:`` line, for invalid input;
    a run that diverges or fails is returned, its ``exit_code`` and ``summary["stop_reason"]`` saying so.
    """
    from gd_torch.command import build, train  # Lightning: imported when a run is made
    from gd_torch.data import handing
    from gd_torch.history import InMemoryLogger
    from gd_torch.quiet import filters_as_found
    from gd_torch.rundir import run_directory
    from gd_torch.summary import RunSummary

    handed, columns = _table_of(data)
    with filters_as_found():
        with _config_file(config) as path, _without_command_line_arguments(), handing(handed):
            try:
                cli = build(["--config", str(path), *flags, *columns])
            except ConfigError as error:
                if handed is None:
                    raise
                # What is wrong with the table handed over is said of fit's data, not of a path left null.
                raise ConfigError(re.sub(r"^data\.init_args(\.path)?: (?=data\b)", "", str(error))) from None
        memory = InMemoryLogger()  # every value the other loggers get, kept in this process
        cli.trainer.loggers = [*cli.trainer.loggers, memory]
        code = train(cli, raise_invalid=True)
    summary = next((c.summary for c in cli.trainer.callbacks if isinstance(c, RunSummary)), None) or {}
    model = copy.deepcopy(cli.model.predictor()).cpu().eval() if summary.get("stop_reason") != "failed" else None
    return Run(code, run_directory(cli.trainer), summary, model, dict(memory.history))


def _table_of(data: Any) -> tuple[Any, list[str]]:
    """The table to hand over, and the flags that make the data section read it: ``(x, y)`` arrays
    become columns named here, so they are named in the flags too."""
    if data is None:
        return None, []
    import lightning.pytorch as pl

    if isinstance(data, pl.LightningDataModule):  # a DataModule of one's own, made in the notebook
        return data, ["--data.class_path=gd_torch.data.HandedDataModule"]
    flags = ["--data.class_path=gd_torch.data.TablePoints", "--data.init_args.path=null"]
    if not isinstance(data, tuple):
        return data, flags
    if len(data) != 2:
        raise ConfigError(f"data: a tuple is (x, y), got {len(data)} items")
    columns, names = {}, {}
    for role, values in zip(("x", "y"), data, strict=True):
        array = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
        if array.ndim not in (1, 2):
            raise ConfigError(f"data: {role} must have shape (N,) or (N, columns), got {array.shape}")
        if role == "y" and len(array) != len(columns[names["x"][0]]):
            raise ConfigError(
                f"data: x has {len(columns[names['x'][0]])} rows but y has {len(array)}; a row is a point"
            )
        named = [role] if array.ndim == 1 else [f"{role}{i}" for i in range(1, array.shape[1] + 1)]
        columns |= dict(zip(named, array.reshape(len(array), -1).T, strict=True))
        names[role] = named
    return columns, [*flags, f"--data.init_args.x={names['x']}", f"--data.init_args.y={names['y']}"]


@contextmanager
def _config_file(config: str | Path | dict) -> Iterator[Path]:
    if not isinstance(config, dict):
        yield Path(config)
        return
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        yield path


@contextmanager
def _without_command_line_arguments() -> Iterator[None]:
    """A notebook's kernel has arguments of its own in sys.argv; the config comes from fit's alone."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved
