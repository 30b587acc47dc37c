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

from gd_torch.curvature import spectrum, stability_limit
from gd_torch.fanout import log_rows, loggers_of
from gd_torch.module import GradientDescent
from gd_torch.splits import Resident, splits_of
from gd_torch.stopping import completed_step

TAGS = ("train/sharpness", "train/stability_limit")
LOADED_POINTS = 4096  # points of a DataModule's own training split the sharpness is measured on


class Sharpness(pl.Callback):
    """The loss Hessian's largest eigenvalue every ``every`` steps, to every logger.

    It logs ``train/sharpness`` and, for SGD (whose bound is known), ``train/stability_limit`` after
    every ``every``-th update, measured on rank zero over the training split.

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
        if step % self.every or not trainer.is_global_zero or not isinstance(pl_module, GradientDescent):
            return
        split = splits_of(trainer.datamodule, pl_module.device).get("train")
        if split is None:
            return
        # The points a PointData holds, all of them; a DataModule's, a fixed subset of them.
        x, y = split.subset(0 if isinstance(split, Resident) else LOADED_POINTS)
        found = spectrum(pl_module.model, x, y, pl_module.reduction, self._direction, check_quadratic=False)
        self._direction = found.direction
        values = {"train/sharpness": found.max_eigenvalue}
        learning_rate = trainer.optimizers[0].param_groups[0]["lr"]
        limit = stability_limit(learning_rate, pl_module.optimizer_settings())
        if limit is not None:
            values["train/stability_limit"] = limit
        log_rows(loggers_of(trainer), [(step, time.time(), values)])
