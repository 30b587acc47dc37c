"""The LightningModule: plain gradient descent on mean squared error for any injected model."""

import math
from typing import Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

Reduction = Literal["mean", "sum"]


class GradientDescent(pl.LightningModule):
    """Fits ``model`` to points ``(x, y)`` by SGD on ``mse_loss(model(x), y, reduction=...)``.

    ``reduction="sum"`` is the article's sum of squared errors; ``"mean"`` divides the loss and
    its gradient by the number of points, so the same descent needs an N-times larger learning rate.
    """

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float = 0.01,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        # The injected nn.Module is saved in checkpoints as weights; the config rebuilds it.
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.learning_rate = learning_rate
        self.reduction = reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.model(x), y, reduction=self.reduction)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # Evaluated at the parameters *before* this step's update: the article's loss column.
        return self.loss(*batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.SGD(trainable, lr=self.learning_rate)
