"""Values to every logger of a run, as Lightning's ``LearningRateMonitor`` sends them: computed once,
then ``log_metrics(values, step)`` for each of ``trainer.loggers``, on rank zero only.

A TensorBoard logger gets each step as one event holding every tag (see
:mod:`gd_torch.adapters.tensorboard`): the same scalars TensorBoard reads back, at a fraction of the
cost of one ``add_scalar`` per tag. Every other logger (CSV, MLflow, the in-memory history of
``gd_torch.fit``) gets Lightning's ``log_metrics``.
"""

import lightning.pytorch as pl
from lightning.pytorch.loggers import Logger, TensorBoardLogger

from gd_torch.adapters.tensorboard import add_scalars_event

Row = tuple[int, float, dict[str, float]]  # step, wall time, tag -> value


def loggers_of(trainer: pl.Trainer) -> list[Logger]:
    """The loggers that write: all of them on rank zero, none on the other processes of a DDP run."""
    return list(trainer.loggers) if trainer.is_global_zero else []


def log_rows(loggers: list[Logger], rows: list[Row]) -> None:
    """Each row's values at its step, to every logger, then each logger flushed."""
    if not rows:
        return
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = logger.experiment
            for step, wall_time, values in rows:
                add_scalars_event(writer, values.items(), step, wall_time)
            writer.flush()
        else:
            for step, _, values in rows:
                logger.log_metrics(values, step)
            logger.save()
