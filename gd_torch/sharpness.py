"""The sharpness as a run goes: the loss Hessian's largest eigenvalue every ``every`` steps, beside the
largest one at which the optimizer is stable at its learning rate (2 / lr for plain SGD).

Full-batch descent on a network drives the first up to the second and holds it there: the edge of
stability (Cohen et al., ICLR 2021). One measurement costs a few Hessian-vector products over the
training split (docs/performance.md), so it runs only when asked for: ``tensorboard.sharpness_every``
in the config, or this callback in ``trainer.callbacks``.
"""

import time

import lightning.pytorch as pl
import torch

from gd_torch.fanout import log_rows, loggers_of
from gd_torch.module import GradientDescent
from gd_torch.splits import Resident, splits_of
from gd_torch.stability import stability_limit
from gd_torch.step_curvature import points_per_step, shares_out, step_spectrum
from gd_torch.stopping import completed_step

TAGS = ("train/sharpness", "train/stability_limit")
LOADED_POINTS = 4096  # points of a DataModule's own training split the sharpness is measured on


class Sharpness(pl.Callback):
    """The loss Hessian's largest eigenvalue every ``every`` steps, to every logger.

    It logs ``train/sharpness`` (of one step's loss, as the bound at the start: gd_torch.step_curvature)
    and, for SGD (whose bound is known), ``train/stability_limit`` after every ``every``-th update,
    measured over the training split (a PointData's shared out over the processes).

    Args:
        every: Measure after every this many steps, >= 1.
    """

    def __init__(self, every: int = 100) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self._direction: torch.Tensor | None = None  # the last top eigenvector: a warm start for the next

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx):
        step = completed_step(trainer)
        if step % self.every or not isinstance(pl_module, GradientDescent):
            return
        split = splits_of(trainer.datamodule, pl_module.device).get("train")
        if split is None or not (trainer.is_global_zero or shares_out(trainer, split)):
            return
        points = points_per_step(trainer.datamodule, split, trainer.world_size)
        if pl_module.reduction == "sum" and points is None:
            return  # no honest scale (gd_torch.step_curvature); the console said so at the start
        # The points a PointData holds, all of them (shared out over the processes); a DataModule's, a
        # fixed subset of them, on rank zero.
        limit = 0 if isinstance(split, Resident) else LOADED_POINTS
        found, _ = step_spectrum(trainer, pl_module, split, points, limit, start=self._direction, check_quadratic=False)
        self._direction = found.direction
        if not trainer.is_global_zero:
            return
        values = {"train/sharpness": found.max_eigenvalue}
        learning_rate = trainer.optimizers[0].param_groups[0]["lr"]
        limit = stability_limit(learning_rate, pl_module.optimizer_settings())
        if limit is not None:
            values["train/stability_limit"] = limit
        log_rows(loggers_of(trainer), [(step, time.time(), values)])
