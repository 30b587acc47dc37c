"""TensorBoard's writer, below ``SummaryWriter.add_scalar``: one event holding many tags, the
Custom Scalars layout, and the purge step of a run resumed in its own directory.

``add_scalar`` writes one event per tag; a step of the dashboard holds a handful of tags, so one event
per step (a ``Summary`` with one value per tag) is a fraction of the events and of the writer's queue
traffic, and TensorBoard's reader gives back the same scalars. ``SummaryWriter`` has no public call
for a prepared ``Summary``: its file writer's ``add_summary`` is the one private use here.
"""

from collections.abc import Iterable

from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import custom_scalars


def add_scalars_event(writer: SummaryWriter, values: Iterable[tuple[str, float]], step: int, wall_time: float) -> None:
    """One event at ``step`` holding a scalar for each ``(tag, value)``."""
    summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values])
    writer._get_file_writer().add_summary(summary, step, wall_time)


def add_layout(writer: SummaryWriter, layout: dict) -> None:
    """The Custom Scalars tab's layout: ``{category: {chart title: ["Multiline", [tag regexes]]}}``.

    ``SummaryWriter.add_custom_scalars`` writes the same summary; it is called through the file writer
    so that the layout event carries no step of its own (TensorBoard reads it from any step)."""
    writer._get_file_writer().add_summary(custom_scalars(layout))


def purge_from(logger: TensorBoardLogger, step: int) -> None:
    """Make the logger's writer start with TensorBoard's purge marker at ``step``: readers (TensorBoard,
    its ``EventAccumulator``) then drop what earlier event files of the directory hold from ``step`` on,
    so a run resumed there shows each step once. ``SummaryWriter(purge_step=...)`` is the public form;
    the logger makes its writer later, from the keyword arguments it keeps."""
    if logger._experiment is not None:
        raise RuntimeError("purge_from must be called before the logger's writer is made")
    logger._kwargs["purge_step"] = step
