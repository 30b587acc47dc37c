"""Plain PyTorch models (no Lightning here): what gradient descent fits."""

import itertools
import math
from typing import Literal

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


def _as_features(x: torch.Tensor) -> torch.Tensor:
    """(N,) for one feature or (N, F): always (N, F)."""
    return x.unsqueeze(-1) if x.dim() == 1 else x


class LinearRegression(nn.Module):
    """``y = x @ weight + bias`` for ``features`` inputs: the Line with one slope per feature.

    Starts from zero, so gradient descent on it is deterministic.
    """

    def __init__(self, features: int = 1) -> None:
        super().__init__()
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        self.weight = nn.Parameter(torch.zeros(features))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _as_features(x) @ self.weight + self.bias


ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Module):
    """A small multi-layer perceptron from ``features`` inputs to one output, for curves a line
    cannot fit. PyTorch's default initialisation: set ``seed_everything`` to make it repeatable."""

    def __init__(
        self,
        features: int = 1,
        hidden: list[int] | None = None,
        activation: Literal["tanh", "relu", "sigmoid", "gelu", "silu"] = "tanh",
    ) -> None:
        super().__init__()
        hidden = [32, 32] if hidden is None else hidden
        if features < 1:
            raise ValueError(f"features must be >= 1, got {features}")
        if any(width < 1 for width in hidden):
            raise ValueError(f"hidden sizes must be >= 1, got {hidden}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        widths = [features, *hidden]
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(_as_features(x)).squeeze(-1)
