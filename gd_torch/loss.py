"""The loss one optimizer step minimizes, defined once for the step, the measurements and the curvature.

It is the squared error of every target value of a batch (a point with several targets has one per
target): summed (``sum``, the article's sum of squared errors) or divided by how many target values
there are (``mean``). Under several processes the batch is every process's, so the mean's divisor is
the global count. Everything else (the loss over a whole split, ``val/loss``, the curvature) adds the
squared errors up chunk by chunk and divides once, as the step does.
"""

from typing import Literal

import torch
import torch.nn.functional as F

from gd_torch.models import as_targets

Reduction = Literal["mean", "sum"]
REDUCTIONS = ("mean", "sum")


def batch_loss(prediction: torch.Tensor, y: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """The loss of one batch held whole: what a step on one process differentiates."""
    return F.mse_loss(as_targets(prediction, y), y, reduction=reduction)


def squared_error(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The sum of the squared errors of every target value: what chunks and processes add up."""
    return F.mse_loss(as_targets(prediction, y), y, reduction="sum")


def divisor(values: "int | float | torch.Tensor", reduction: Reduction) -> "float | torch.Tensor":
    """What the squared errors of ``values`` target values are divided by to be the loss."""
    return values if reduction == "mean" else 1.0
