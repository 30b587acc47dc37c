"""Run directories: ``<save_dir>/<name>/version_<n>/``, one per run, never shared or overwritten.

They are claimed after every check that can fail on bad input, so an invalid config leaves nothing.
"""

import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from gd_torch.adapters.loggers import FileLogger, next_version, pin_version, version_of
from gd_torch.errors import ConfigError


def file_loggers_first(loggers: list[Logger]) -> list[Logger]:
    """The loggers with the TensorBoard ones first: Lightning puts the run's files (config.yaml,
    checkpoints) in the first logger's directory. Raises ConfigError when none writes files."""
    if loggers and not any(isinstance(lg, FileLogger) for lg in loggers):
        names = ", ".join(type(lg).__name__ for lg in loggers)
        raise ConfigError(
            f"trainer.logger: a run keeps its files (config.yaml, summary.json, checkpoints) in the directory of a"
            f" TensorBoardLogger or CSVLogger; add one beside {names}"
        )
    return sorted(loggers, key=lambda lg: not isinstance(lg, TensorBoardLogger))  # a stable sort


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
