"""Run directories: ``<save_dir>/<name>/version_<n>/``, one per run, never shared or overwritten.

With MLflow as the only logger, the run's files (config.yaml, summary.json, the pictures, checkpoints)
go to ``<trainer.default_root_dir>/runs/<experiment name>/<MLflow run id>/``, and to MLflow as
artifacts. They are claimed after every check that can fail on bad input, so an invalid config
leaves nothing.
"""

import os
import weakref
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from gd_torch.adapters.lightning import set_default_root_dir
from gd_torch.adapters.loggers import FileLogger, experiment_name, is_mlflow, next_version, pin_version, version_of
from gd_torch.adapters.tensorboard import purge_from
from gd_torch.errors import ConfigError


def file_loggers_first(loggers: list[Logger]) -> list[Logger]:
    """The loggers that write files first, TensorBoard's before CSV's: Lightning puts the run's files
    (config.yaml, checkpoints) in the first logger's directory. Raises ConfigError when none writes
    files and the first is not MLflow's (whose run names a directory of its own)."""
    if loggers and not any(isinstance(lg, FileLogger) for lg in loggers) and not is_mlflow(loggers[0]):
        names = ", ".join(type(lg).__name__ for lg in loggers)
        raise ConfigError(
            f"trainer.logger: a run keeps its files (config.yaml, summary.json, checkpoints) in the directory of a"
            f" TensorBoardLogger or CSVLogger, or of an MLFlowLogger's run; add one beside {names}"
        )
    # TensorBoard first, then CSV, then the others, each in the config's order (a stable sort).
    return sorted(loggers, key=lambda lg: (not isinstance(lg, TensorBoardLogger), not isinstance(lg, FileLogger)))


def mlflow_alone(loggers: list[Logger]) -> bool:
    """Whether MLflow's run names the run directory: no logger writes files (they come first, see
    :func:`file_loggers_first`) and the first is an MLFlowLogger."""
    return bool(loggers) and is_mlflow(loggers[0])


_KNOWN: "weakref.WeakKeyDictionary[pl.Trainer, Path]" = weakref.WeakKeyDictionary()


def run_directory(trainer: pl.Trainer) -> Path:
    """The run's own directory: the first logger's version directory; with MLflow alone, the one named
    after its run; with no logger, the one claimed for it (:func:`claim_unlogged_run_directory`).

    Finding it is a broadcast under DDP, which every process must join: it is found once, at a fixed
    point every process passes (the set-up: SaveConfig asks first), and remembered, so that a path
    only one process takes (an exception's) asks no collective of the others."""
    known = _KNOWN.get(trainer)
    if known is None:
        known = _KNOWN[trainer] = _found(trainer)
    return known


def _found(trainer: pl.Trainer) -> Path:
    loggers = trainer.loggers
    if any(isinstance(logger, FileLogger) for logger in loggers):  # they come first: see file_loggers_first
        return Path(trainer.log_dir)
    if not trainer.is_global_zero:
        path = None
    elif mlflow_alone(loggers):
        path = str(mlflow_run_directory(loggers[0], trainer.default_root_dir))
    else:  # no logger names one (gd_torch.fit keeps the values in memory): made the trainer's root when claimed
        path = trainer.default_root_dir
    return Path(trainer.strategy.broadcast(path))


UNLOGGED = Path("runs") / "unlogged"  # under trainer.default_root_dir: the runs of trainer.logger: false


def claim_unlogged_run_directory(trainer: pl.Trainer, made: list[Path]) -> None:
    """No logger (``trainer.logger: false``): nothing logs the steps, but the run's files (config.yaml,
    summary.json, checkpoints, pictures) still get a directory of their own,
    ``<default_root_dir>/runs/unlogged/version_<n>``, made the trainer's root so that Lightning's
    checkpoints go there too (without it they land in the working directory, over the last run's)."""
    root = Path(trainer.default_root_dir) / UNLOGGED
    problem = why_not_writable(root)
    if problem:
        raise ConfigError(f"trainer.default_root_dir: cannot write runs to {root}: {problem}")
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name.removeprefix("version_")) for p in root.glob("version_*") if p.name[8:].isdigit()]
    version = max(numbers, default=-1) + 1
    while True:
        try:
            (root / f"version_{version}").mkdir()  # atomic: one run gets each version
            break
        except FileExistsError:
            version += 1
    run_dir = root / f"version_{version}"
    made.append(run_dir)
    set_default_root_dir(trainer, run_dir)


def mlflow_run_directory(logger: Logger, root: str | Path) -> Path:
    return Path(root) / "runs" / experiment_name(logger) / logger.run_id


def claim_mlflow_run_directory(trainer: pl.Trainer, made: list[Path]) -> None:
    """MLflow alone: the MLflow run is started now (its id names the directory), and the checkpoints
    without a directory of their own are kept in this one, not in Lightning's ``<experiment id>/<run
    id>/checkpoints`` under the working directory."""
    logger = trainer.loggers[0]
    run_dir = mlflow_run_directory(logger, trainer.default_root_dir)
    problem = why_not_writable(run_dir.parent)
    if problem:
        raise ConfigError(f"trainer.default_root_dir: cannot write runs to {run_dir.parent}: {problem}")
    run_dir.mkdir(parents=True)  # a new MLflow run id: never an earlier run's
    made.append(run_dir)
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(run_dir / "checkpoints")


def claim_run_directories(loggers: list[Logger], keys: dict[int, str], made: list[Path]) -> None:
    """Reserve a new version directory for every logger that writes files (TensorBoard, CSV); loggers
    of the same ``save_dir/name`` share one. ``keys`` gives each logger's config key (by id), for
    the error lines; each directory goes into ``made`` the moment it exists (a signal may come
    between two). Only rank zero of a DDP run calls this: its directory is the others' too."""
    claimed: dict[str, int | str] = {}  # root directory -> the version reserved there
    for logger in loggers:
        if not isinstance(logger, FileLogger):
            continue
        root = str(Path(logger.root_dir).absolute())
        if root in claimed and version_of(logger) is None:
            pin_version(logger, claimed[root])  # the same run directory as the logger before it
            continue
        made.append(reserve(logger, keys[id(logger)]))
        claimed[root] = logger.version
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            _ = logger.experiment  # its writer, made while the directory is still empty (else it warns)


def root_of(loggers: list[Logger]) -> Path | None:
    """Where the runs of this config live (``<save_dir>/<name>`` of the first logger that writes
    files), or None when none does."""
    first = next((logger for logger in loggers if isinstance(logger, FileLogger)), None)
    return Path(first.root_dir) if first is not None else None


def reuse_run_directory(loggers: list[Logger], run_dir: Path, step: int) -> None:
    """Resume in ``run_dir``, an earlier run of this config: the file loggers of its root write there
    again, TensorBoard's from ``step`` on (what the earlier run logged past its checkpoint is dropped)."""
    name = run_dir.name
    number = name.removeprefix("version_")
    version: int | str = int(number) if name.startswith("version_") and number.isdigit() else name
    for logger in loggers:
        if isinstance(logger, FileLogger) and Path(logger.root_dir).absolute() == run_dir.parent.absolute():
            pin_version(logger, version)
            if isinstance(logger, TensorBoardLogger):
                purge_from(logger, step)


def reserve(logger: FileLogger, key: str) -> Path:
    problem = why_not_writable(logger.save_dir)
    if problem:
        raise ConfigError(f"{key}.init_args.save_dir: cannot write runs to {logger.save_dir}: {problem}")
    try:
        return reserve_run_directory(logger)
    except FileExistsError:
        raise ConfigError(
            f"{key}.init_args.version: {logger.log_dir} already exists;"
            " earlier runs are never overwritten (leave version unset to take the next one)"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"{key}.init_args.save_dir: cannot write runs to {logger.save_dir}: {error.strerror}: {error.filename}"
        ) from None


def why_not_writable(save_dir: str | Path) -> str | None:
    """Why runs cannot be written under ``save_dir``, or None if they can."""
    path = Path(save_dir).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def reserve_run_directory(logger: FileLogger) -> Path:
    """Create this run's directory before training and pin the logger to it.

    The loggers pick ``max(existing version) + 1`` by listing the directory, so runs started at the same
    moment would share a version; ``mkdir`` is atomic and succeeds for exactly one. A version named in
    the config must not exist yet.
    """
    if version_of(logger) is not None:
        run_dir = Path(logger.log_dir)
        run_dir.mkdir(parents=True)  # FileExistsError: an earlier run is there
        return run_dir
    root = Path(logger.root_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = next_version(logger)
    while True:
        try:
            (root / f"version_{version}").mkdir()
        except FileExistsError:
            version += 1
            continue
        pin_version(logger, version)
        return Path(logger.log_dir)
