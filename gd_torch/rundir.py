"""Run directories: ``<save_dir>/<name>/version_<n>/``, one per run, never shared or overwritten."""

import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def why_not_writable(save_dir: str | Path) -> str | None:
    """Why runs cannot be written under ``save_dir``, or None if they can."""
    path = Path(save_dir).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def reserve_run_directory(logger: TensorBoardLogger | CSVLogger) -> Path:
    """Create this run's directory before training and pin the logger to it.

    TensorBoardLogger (and CSVLogger) picks ``max(existing version) + 1`` by listing the directory, so runs started
    at the same moment would share a version; ``mkdir`` is atomic and succeeds for exactly one.
    A version named in the config must not exist yet.
    """
    if logger._version is not None:
        run_dir = Path(logger.log_dir)
        run_dir.mkdir(parents=True)  # FileExistsError: an earlier run is there
        return run_dir
    root = Path(logger.root_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = logger._get_next_version()
    while True:
        try:
            (root / f"version_{version}").mkdir()
        except FileExistsError:
            version += 1
            continue
        logger._version = version
        return Path(logger.log_dir)
