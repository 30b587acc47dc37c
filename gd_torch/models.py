"""Plain PyTorch models (no Lightning here): what gradient descent fits."""

import math

import torch
from torch import nn


class Line(nn.Module):
    """The article's model, ``y = slope * x + intercept``, with two scalar parameters.

    Either parameter can be frozen: the article knows the slope (``slope=2, learn_slope=False``)
    and learns only the intercept ``b``, starting from 10.
    """

    def __init__(
        self,
        slope: float = 0.0,
        intercept: float = 0.0,
        learn_slope: bool = True,
        learn_intercept: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("slope", slope), ("intercept", intercept)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        # 0-dim parameters: TensorBoard and the table show them as plain scalars.
        self.slope = nn.Parameter(torch.tensor(float(slope)), requires_grad=learn_slope)
        self.intercept = nn.Parameter(torch.tensor(float(intercept)), requires_grad=learn_intercept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slope * x + self.intercept
