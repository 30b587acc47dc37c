"""Plain PyTorch models (no Lightning here): what gradient descent fits."""

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from gd_torch.schema import Schema, tensor_of


class Line(nn.Module):
    """The article's model, ``y = slope * x + intercept``, with two scalar parameters.

    Either parameter can be frozen: the article knows the slope (``slope=2, learn_slope=False``)
    and learns only the intercept ``b``, starting from 10.

    Args:
        slope: The starting slope m.
        intercept: The starting intercept b.
        learn_slope: Learn the slope (false: frozen where it starts).
        learn_intercept: Learn the intercept (false: frozen where it starts).
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
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        for name, value in (("learn_slope", learn_slope), ("learn_intercept", learn_intercept)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value}")
        # 0-dim parameters: TensorBoard and the table show them as plain scalars.
        self.slope = nn.Parameter(torch.tensor(float(slope)), requires_grad=learn_slope)
        self.intercept = nn.Parameter(torch.tensor(float(intercept)), requires_grad=learn_intercept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slope * x + self.intercept


def _as_features(x: torch.Tensor) -> torch.Tensor:
    """(N,) for one feature, (N, F), or points of more dimensions (an image's (N, C, H, W)) flattened:
    always (N, F)."""
    if x.dim() == 1:
        return x.unsqueeze(-1)
    return x.flatten(1) if x.dim() > 2 else x


def _count(name: str, value: int | None) -> int:
    """A size given, or 1 when it is left to the data (the command fills in the data's count)."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be >= 1 or null (the data's count), got {value}")
    return value


class LinearRegression(nn.Module):
    """``y = x @ weight + bias`` for ``features`` inputs: the Line with one slope per feature.

    Starts from zero, so gradient descent on it is deterministic. With several ``outputs`` (one per
    target), ``weight`` is (features, outputs) and ``bias`` (outputs,): one linear regression per target.

    Args:
        features: The number of input columns, >= 1 (a point of more dimensions, an image's (C, H, W),
            is flattened: C * H * W); left out, the command takes the data's (one-hot categories
            counted), and Python's default is 1.
        outputs: The number of targets it predicts, >= 1; left out, the data's (1 in Python).
    """

    def __init__(self, features: int | None = None, outputs: int | None = None) -> None:
        super().__init__()
        features, outputs = _count("features", features), _count("outputs", outputs)
        self.weight = nn.Parameter(torch.zeros(features) if outputs == 1 else torch.zeros(features, outputs))
        self.bias = nn.Parameter(torch.zeros(()) if outputs == 1 else torch.zeros(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _as_features(x) @ self.weight + self.bias


ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Module):
    """A small multi-layer perceptron, for curves a line cannot fit.

    Its output is of shape (N,) for one output, (N, outputs) for several (one per target).

    PyTorch's default initialisation: set ``seed_everything`` to make it repeatable.

    Args:
        features: The number of input columns, >= 1 (a point of more dimensions, an image's (C, H, W),
            is flattened: C * H * W); left out, the command takes the data's (one-hot categories
            counted), and Python's default is 1.
        outputs: The number of targets it predicts, >= 1; left out, the data's (1 in Python).
        hidden: The width of each hidden layer (default: [32, 32]).
        activation: The nonlinearity after each hidden layer.
        dropout: The probability of dropping each hidden unit while training, in [0, 1) (0 = no
            dropout layers; the loss the run reports and its curvature are in eval mode, without it).
    """

    def __init__(
        self,
        features: int | None = None,
        hidden: list[int] | None = None,
        activation: Literal["tanh", "relu", "sigmoid", "gelu", "silu"] = "tanh",
        dropout: float = 0.0,
        outputs: int | None = None,
    ) -> None:
        super().__init__()
        hidden = [32, 32] if hidden is None else hidden
        features, outputs = _count("features", features), _count("outputs", outputs)
        if any(width < 1 for width in hidden):
            raise ValueError(f"hidden sizes must be >= 1, got {hidden}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        widths = [features, *hidden]
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(widths[-1], outputs))
        self.layers = nn.Sequential(*layers)
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(_as_features(x))
        return out.squeeze(-1) if self.outputs == 1 else out


def as_targets(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``prediction`` in the shape of the targets ``y``, or a ValueError that says why it cannot be.

    One prediction per point and target: for one target, an output of shape (N, 1)
    (``torch.nn.Linear(F, 1)``) is flattened to (N,), and an output of (N,) meets targets of shape
    (N, 1) (a DataModule's ``y.unsqueeze(1)``) as (N, 1); any other shape that differs from y's is
    refused, so the loss never broadcasts.
    """
    if prediction.shape == y.shape:
        return prediction
    if prediction.dim() == y.dim() + 1 and prediction.shape[-1] == 1 and prediction.shape[:-1] == y.shape:
        return prediction.squeeze(-1)
    if y.dim() == prediction.dim() + 1 and y.shape[-1] == 1 and y.shape[:-1] == prediction.shape:
        return prediction.unsqueeze(-1)
    raise ValueError(f"the model's output has shape {tuple(prediction.shape)}; expected {expected_shape(y)}")


def expected_shape(y: torch.Tensor) -> str:
    """What a model's output must be for targets ``y``, in words."""
    if y.dim() == 1:
        return f"{tuple(y.shape)} or {(*y.shape, 1)}, one prediction per point"
    targets = y.shape[-1]
    if targets == 1:
        return f"{tuple(y.shape)} or {tuple(y.shape[:-1])}, one prediction per point"
    return f"{tuple(y.shape)}, one prediction per point for each of the {targets} targets (e.g. outputs: {targets})"


class Predictor(nn.Module):
    """A trained model as it is used: raw x in, one prediction per point (and target) out, in the
    targets' units.

    When the run standardized its features, ``x_mean`` and ``x_std`` (the training split's) are
    applied first, so callers never see standardized units. ``feature_names`` are the model's input
    columns, in order (a categorical column as its one-hot columns, ``color=red``); ``target_names``
    its outputs. ``table`` takes the raw columns by name, categories as text, as the run's CSV had them.
    """

    def __init__(
        self,
        model: nn.Module,
        schema: Schema,
        x_mean: torch.Tensor | None = None,
        x_std: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.schema = schema
        self.feature_names = schema.feature_names
        self.target_names = schema.target_names
        self.register_buffer("x_mean", x_mean)
        self.register_buffer("x_std", x_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return predict(self.model, x, self.x_mean, self.x_std)

    def table(self, columns: Any) -> torch.Tensor:
        """The predictions for a raw table: a pandas or polars DataFrame, a pyarrow Table or a dict of
        columns (``{column: values}``), x's columns by name, a categorical one's cells as its categories.
        A bad or missing cell is a ValueError that names its row and column."""
        from gd_torch.sources import memory_source
        from gd_torch.tables import read_columns

        source = memory_source(columns, "table")
        absent = [c for c in self.schema.x if c not in source.header()]
        if absent:
            raise ValueError(
                f"the table has no column {absent[0]!r}; the run was trained on {', '.join(self.schema.x)}"
            )
        categorical = frozenset(self.schema.categories)
        dtype = self.numbers_dtype()
        raw = read_columns(source, {"x": self.schema.x}, key="table", categorical=categorical, dtype=dtype)
        x = tensor_of(self.schema.encode(raw, "table", self.schema.x), torch.device("cpu"), dtype=dtype)
        with torch.no_grad():
            return self(x)

    def numbers_dtype(self) -> type:
        """The NumPy dtype a table's numbers are read into for this model: float64 for a model trained
        in float64 (every digit kept), else float32."""
        floating = [p.dtype for p in self.parameters() if p.is_floating_point()]
        return np.float64 if floating and floating[0] == torch.float64 else np.float32


def predict(model: nn.Module, x: torch.Tensor, x_mean: torch.Tensor | None, x_std: torch.Tensor | None) -> torch.Tensor:
    """``model``'s predictions for raw ``x``: standardized first when the statistics are given, and an
    (N, 1) output flattened to (N,), one prediction per point, as in training. x is taken in the
    model's floating dtype (a run under 64-true is a float64 model; a table is read as float32)."""
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    if parameter is not None and x.is_floating_point():
        x = x.to(parameter.dtype)
    if x_mean is not None:
        x = (x - x_mean) / x_std
    prediction = model(x)
    return prediction.squeeze(-1) if prediction.dim() == 2 and prediction.shape[-1] == 1 else prediction


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode without gradients (no dropout, batch norm on its running statistics), and
    every submodule's own mode restored afterwards."""
    with in_eval_mode(model), torch.no_grad():
        yield


@contextmanager
def in_eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode, gradients still on (the curvature differentiates through it), and every
    submodule's own mode restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.train(training)


def in_data_units(model: nn.Module, x_mean: torch.Tensor, x_std: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """A linear model's parameters for raw x, when it was trained on standardized x: from
    ``y = w . (x - mean) / std + b``, the weights are ``w / std`` and the bias ``b - w . (mean / std)``.

    For a :class:`Line`, a :class:`LinearRegression` and a ``torch.nn.Linear`` (each output on its own);
    None for any other model (its parameters have no such reading).
    """
    if isinstance(model, Line):
        names, weight, bias = ("slope", "intercept"), model.slope, model.intercept
    elif isinstance(model, LinearRegression | nn.Linear):
        names, weight, bias = ("weight", "bias"), model.weight, model.bias
    else:
        return None
    # The weights as (features, outputs): a Line's slope is (), LinearRegression's weight (F,) or
    # (F, k), nn.Linear's (k, F).
    features = x_mean.numel()
    by_feature = weight.T if isinstance(model, nn.Linear) else weight.reshape(features, -1)
    mean, std = x_mean.double().reshape(-1, 1), x_std.double().reshape(-1, 1)
    with torch.no_grad():
        raw = by_feature.double() / std
        shift = (raw * mean).sum(dim=0)  # (outputs,)
        raw_bias = -shift if bias is None else bias.double() - shift.reshape(bias.shape)
    return {names[0]: (raw.T if isinstance(model, nn.Linear) else raw).reshape(weight.shape), names[1]: raw_bias}
