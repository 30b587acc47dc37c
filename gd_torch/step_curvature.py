"""The curvature of the loss one optimizer step minimizes, measured on the points a split can give.

The stable learning rate is about one step: the loss it differentiates is the squared errors of its
batch (every process's), summed or divided by their count (gd_torch.loss). The Hessian is measured on
other points (a seeded subset of a large split, or the whole split while a step takes a mini-batch),
so the measured squared errors are divided to stand for the step's: for ``mean`` by their own count
(a mean over any points estimates the mean over a batch), for ``sum`` by measured / step points (a sum
over m points stands for a sum over B points as B/m of it). A sum whose step size is not known (a
DataModule's loader without a batch size) has no honest bound, and none is given.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as pl
import torch

from gd_torch.curvature import Computed, Spectrum, Summed, spectrum
from gd_torch.errors import named
from gd_torch.loss import Reduction
from gd_torch.splits import Loaded, Resident, Split


@dataclass(frozen=True)
class StepScale:
    """Which loss a Hessian is of: ``reduction`` over the ``step_points`` one step takes (every process's;
    None where not known), measured on ``measured`` of the ``split_points`` training points (None: a
    stream of unknown length)."""

    reduction: Reduction
    step_points: int | None
    measured: int
    split_points: int | None

    @property
    def known(self) -> bool:
        """Whether the step's loss can be stood for: always for the mean, for the sum when its size is known."""
        return self.reduction == "mean" or self.step_points is not None

    @property
    def whole(self) -> bool:
        """The step takes every training point and the Hessian was measured on all of them: exact."""
        return self.step_points == self.split_points == self.measured

    def divisor(self, targets: int) -> float:
        """What the measured points' squared errors are divided by (``targets`` values per point)."""
        if self.reduction == "mean":
            return float(self.measured * targets)
        if self.step_points is None:
            raise ValueError("the sum over a step of unknown size has no scale")
        return self.measured / self.step_points

    def words(self) -> str:
        """What the eigenvalue is of, for the console ("" when it is the whole loss, measured whole)."""
        if self.whole:
            return ""
        if self.step_points is None:  # a loader that yields whole batches: their size is its own
            step = f"the {self.reduction} over one of its batches"
        elif self.step_points == self.split_points:
            step = f"the {self.reduction} over all {self.step_points:,} training points"
        else:
            step = f"the {self.reduction} over a batch of {self.step_points:,} points"
        if self.split_points is None:
            measured = f"the first {self.measured:,} training points"
        elif self.measured < self.split_points:
            measured = f"{self.measured:,} of the {self.split_points:,} training points"
        else:
            measured = f"all {self.measured:,} training points"
        return f"; of one step's loss, {step}, estimated on {measured}"

    def record(self) -> dict:
        """For ``summary.json``: which loss the bound is for, and on how many points it was measured."""
        return {"reduction": self.reduction, "points_per_step": self.step_points, "points_measured": self.measured}


def points_per_step(datamodule: pl.LightningDataModule | None, train: Split, world: int) -> int | None:
    """How many training points one optimizer step takes, over every process; None where not known.

    A PointData says so itself (full batch: every point; else ``batch_size`` on each process); a
    DataModule's loader gives its ``batch_size`` (on each process: Lightning's DistributedSampler
    shares the points out, the batch size stays)."""
    if hasattr(datamodule, "points_per_step"):
        return datamodule.points_per_step(world)
    if not isinstance(train, Loaded):
        return None
    loader = train.loader
    batch = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    if not isinstance(batch, int):
        return None
    return min(batch * world, train.points) if train.points is not None else batch * world


def step_spectrum(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    train: Split,
    step_points: int | None,
    max_points: int,
    **options,
) -> tuple[Spectrum, StepScale]:
    """The spectrum of the loss of one step of ``step_points`` points, measured on at most ``max_points``
    of the training split (0: all); ``options`` go to :func:`gd_torch.curvature.spectrum`.

    Under DDP, points every process holds (a PointData's) are shared out: each process computes on its
    own shard, as its training batches are, and the products are summed over the processes, so every
    process must call this (:func:`shares_out`). A DataModule's own subset is computed whole where it
    is called."""
    x, y = train.subset(max_points)
    scale = StepScale(module.reduction, step_points, len(y), train.points)
    targets = 1 if y.dim() == 1 else math.prod(y.shape[1:])
    summed = None
    if shares_out(trainer, train):
        rank, world = trainer.global_rank, trainer.world_size
        x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
        summed = summed_over(trainer)
    return spectrum(module.model, x, y, scale.divisor(targets), summed=summed, **options), scale


class FailedElsewhere(RuntimeError):
    """The curvature failed on another process: what that one raised, in its words."""


def summed_over(trainer: pl.Trainer) -> Summed:
    """What each process computes on its own points, summed over the processes once they agree that
    every one of them computed it: if it fails on any (a model autograd cannot differentiate twice, a
    shard it cannot take, memory that runs out at Lanczos's fortieth product), every process raises,
    rather than one giving up while the others wait for it in the sum."""

    def summed(compute: Callable[[], Computed]) -> Computed:
        try:
            local, failure = compute(), None
        except Exception as error:  # said below, on every process
            local, failure = None, error
        if trainer.strategy.reduce_boolean_decision(failure is not None, all=False):
            said: list[str | None] = [None] * trainer.world_size
            torch.distributed.all_gather_object(said, named(failure) if failure else None)
            if failure:
                raise failure
            rank, line = next((rank, line) for rank, line in enumerate(said) if line)
            raise FailedElsewhere(f"{line} (on process {rank})")
        if isinstance(local, tuple):
            return tuple(trainer.strategy.reduce(t, reduce_op="sum") for t in local)
        return trainer.strategy.reduce(local, reduce_op="sum")

    return summed


def shares_out(trainer: pl.Trainer, train: Split) -> bool:
    """Whether every process takes part in a measurement of this split (see :func:`step_spectrum`)."""
    return trainer.world_size > 1 and isinstance(train, Resident)
