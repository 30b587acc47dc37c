"""The curvature at the initial parameters, computed as the run sets up: the stable learning rate the
console prints (and warns about), ``learning_rate: auto``, the bound in the divergence message.

Its cost grows with the model and the data: a Lanczos step is one Hessian-vector product, a forward
and a double backward pass, over the points used. The ``curvature:`` section bounds it, and
``enabled: auto`` skips it, with one line, where it would hold the first step back for long. Like
Lightning's own ``LearningRateFinder``, it is a callback that sets the module's learning rate before
the optimizer is made.
"""

import math
import sys
from typing import Literal

import lightning.pytorch as pl

from gd_torch.curvature import DENSE_UP_TO, learnable_values
from gd_torch.dashboard import Dashboard
from gd_torch.errors import ConfigError, named
from gd_torch.sharpness import Sharpness
from gd_torch.splits import Resident, splits_of
from gd_torch.stability import Stability, stable_learning_rate
from gd_torch.step_curvature import FailedElsewhere, points_per_step, step_spectrum

# Learnable values x points x Lanczos steps computed without asking: about a second on two CPU cores
# (docs/performance.md); a GPU does ~100 times as much in that time.
AFFORDABLE = 2e9
AFFORDABLE_ON_CUDA = 2e11
SHOWN_FROM = 2e8  # from this much work on, a line says what is being computed before it starts


class Curvature(pl.Callback):
    """The loss Hessian's largest eigenvalue at the initial parameters (``pl_module.stability``).

    Computed in eval mode (no dropout drawn, batch norm on its running statistics) and without drawing
    from the run's random streams, so the training trajectory is the same with it and without it.

    Args:
        enabled: auto (when something uses it, an SGD bound, learning_rate auto or the sharpness, and
            it is affordable), true (always) or false (never).
        max_points: Above 64 learnable values (and for any model on a streamed table or a DataModule's
            own), the Hessian goes over at most this many points of the training split, a fixed random
            subset (seeded); 0 = all of them.
        max_iterations: Lanczos steps at the most, >= 1.
        tolerance: Relative, on the largest eigenvalue, > 0.
        enforce: A learning rate above the stable bound is an error (exit code 2) instead of a warning.
    """

    def __init__(
        self,
        enabled: bool | Literal["auto"] = "auto",
        max_points: int = 4096,
        max_iterations: int = 100,
        tolerance: float = 1e-4,
        enforce: bool = False,
    ) -> None:
        if enabled not in (True, False, "auto"):
            raise ValueError(f"enabled must be auto, true or false, got {enabled!r}")
        if isinstance(max_points, bool) or max_points < 0:
            raise ValueError(f"max_points must be >= 0 (0 = all the points), got {max_points}")
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"tolerance must be a finite number > 0, got {tolerance}")
        self.enabled, self.max_points, self.max_iterations = enabled, max_points, max_iterations
        self.tolerance, self.enforce = tolerance, enforce

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not hasattr(pl_module, "optimizer_settings"):
            return
        auto = pl_module.learning_rate == "auto"
        split = splits_of(trainer.datamodule, trainer.strategy.root_device).get("train")
        if split is None:
            if auto:
                raise ConfigError("model.learning_rate: auto needs the data's training points (a train_dataloader)")
            return
        if self.enabled is False:
            if auto:
                raise ConfigError("curvature.enabled: false, but model.learning_rate: auto needs the curvature")
            return
        optimizer = pl_module.optimizer_settings()
        size = learnable_values(pl_module.model)
        step = points_per_step(trainer.datamodule, split, trainer.world_size)
        # Lanczos takes a subset; the whole Hessian all the points it holds, a stream's its subset too.
        limit = self.max_points if size > DENSE_UP_TO or not isinstance(split, Resident) else 0
        points = split.points  # None: a DataModule's stream, of no known length
        used = min(points, limit or points) if points is not None else limit or None
        work = size * (used or 0) * (1 if size <= DENSE_UP_TO else self.max_iterations)
        if self.enabled == "auto" and not auto:
            if not (optimizer.has_bound or measures_sharpness(trainer)):
                return  # nothing would read it
            affordable = AFFORDABLE_ON_CUDA if trainer.strategy.root_device.type == "cuda" else AFFORDABLE
            if work > affordable:
                say(trainer, skipped_line(size, used))
                return
        if pl_module.reduction == "sum" and step is None:  # no honest bound: say so, compute nothing
            if auto:
                raise ConfigError(
                    "model.learning_rate: auto with reduction sum needs the points one step sums, and the"
                    " train_dataloader gives no batch_size; use reduction: mean or give a number"
                )
            say(trainer, "Stability: no bound: one step's sum is over an unknown number of points (the"
                " train_dataloader gives no batch_size); reduction: mean has one")  # fmt: skip
            return
        if work > SHOWN_FROM:
            say(trainer, computing_line(size, used, points, self.max_iterations))
        pl_module.stability = self.stability(trainer, pl_module, split, step, limit, optimizer, auto)
        line = above_the_bound(pl_module.stability)
        if line and self.enforce:
            raise ConfigError(f"model.learning_rate: {line} (curvature.enforce is true)")

    def stability(self, trainer, pl_module, split, step, limit, optimizer, auto: bool) -> Stability | None:
        """The spectrum of one step's loss (gd_torch.step_curvature), and ``learning_rate: auto`` resolved."""
        try:
            found, scale = step_spectrum(
                trainer, pl_module, split, step, limit, tolerance=self.tolerance, max_iterations=self.max_iterations
            )
        except Exception as error:  # a model autograd cannot differentiate twice: no report, one line
            if auto:
                raise ValueError(f"learning_rate: auto: the loss Hessian cannot be computed: {error}") from error
            reason = str(error) if isinstance(error, FailedElsewhere) else named(error)
            say(trainer, f"Curvature skipped: the loss Hessian cannot be computed: {reason}")
            return None
        if auto:
            bound = stable_learning_rate(found.max_eigenvalue, optimizer)
            if bound is None:
                raise ValueError(
                    f"learning_rate: auto: the loss Hessian's largest eigenvalue is {found.max_eigenvalue:.6g}"
                    " at the initial parameters, so no learning rate is too large; give a number"
                )
            pl_module.learning_rate = bound / 2
        return Stability(found, optimizer, pl_module.learning_rate, auto=auto, scale=scale)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Just before step 0, after the line that gives the bound (RunSummary's, at the fit's start).
        line = above_the_bound(getattr(pl_module, "stability", None))
        if line:
            say(trainer, f"warning: {line}", error=True)


def above_the_bound(stability: Stability | None) -> str | None:
    """What to say about a learning rate at or above the stable bound; None below it, or without one."""
    bound = stability.stable_learning_rate if stability is not None else None
    if bound is None or stability.learning_rate < bound:
        return None
    return (
        f"learning_rate {stability.learning_rate:g} is {stability.learning_rate / bound:.3g}x the stable bound"
        f" {bound:.6g} for {stability.optimizer.name}: expect divergence"
    )


def measures_sharpness(trainer: pl.Trainer) -> bool:
    return any(
        isinstance(callback, Sharpness) or isinstance(callback, Dashboard) and callback.sharpness_every
        for callback in trainer.callbacks
    )


def computing_line(size: int, points: int, split: int | None, iterations: int) -> str:
    if split is None:  # a stream of no known length
        of = f"the first {points:,} training points"
    else:
        of = f"{points:,} of the {split:,} training points" if points < split else f"the {points:,} training points"
    how = "the whole Hessian" if size <= DENSE_UP_TO else f"at most {iterations} Lanczos steps"
    return f"Curvature: the loss Hessian's largest eigenvalue over {of} ({size:,} learnable values, {how})..."


def skipped_line(size: int, points: int) -> str:
    return (
        f"Curvature skipped: {size:,} learnable values over {points:,} points would hold the first step back;"
        " curvature.enabled: true computes it (curvature.max_points bounds its cost)"
    )


def say(trainer: pl.Trainer, line: str, error: bool = False) -> None:
    if trainer.is_global_zero:
        print(line, file=sys.stderr if error else sys.stdout, flush=True)
