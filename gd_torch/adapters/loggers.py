"""Lightning's file-writing loggers (TensorBoard, CSV) and MLflow's: which version directory a logger
writes to, and where an MLflow logger sends its runs, under which experiment name.

A run directory is claimed before training (``gd_torch.rundir``): the loggers pick ``max(existing
version) + 1`` by listing the directory, so two runs started at once would share a version. Lightning
has no public way to pin a logger to a version after it is made, or to ask for its next version;
these functions are that, and the only place that touches the loggers' insides.
"""

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

FileLogger = TensorBoardLogger | CSVLogger


def version_of(logger: FileLogger) -> int | str | None:
    """The version the logger was given (in its config or pinned), or None: it would pick one."""
    return logger._version


def pin_version(logger: FileLogger, version: int | str) -> None:
    """Make ``logger`` write to ``<root_dir>/version_<version>`` (or ``<root_dir>/<version>``)."""
    logger._version = version


def next_version(logger: FileLogger) -> int:
    """The version the logger would pick now: one past the highest in its root directory."""
    return logger._get_next_version()


def close_writer(logger: Logger) -> None:
    """Close a TensorBoard logger's event writer if it made one (its thread then writes nothing more),
    without making one; ``logger.experiment`` would make it."""
    if isinstance(logger, TensorBoardLogger) and logger._experiment is not None:
        logger._experiment.close()


def tracking_uri(logger: Logger) -> str | None:
    """Where an MLFlowLogger sends its runs (without importing mlflow); None for other loggers."""
    return logger._tracking_uri if is_mlflow(logger) else None


def experiment_name(logger: MLFlowLogger) -> str:
    """The MLflow experiment's name as configured (its id is a number the server picks)."""
    return logger._experiment_name


def is_mlflow(logger: Logger) -> bool:
    return isinstance(logger, MLFlowLogger)  # a Lightning class that imports mlflow only when it runs
