"""Checks that need the data and the model together, made before a run directory is claimed, so that
a model that does not fit its data is one ``error:`` line and not a failed run."""

import torch
from torch import nn

from gd_torch.models import as_targets, evaluating, expected_shape

POINTS_TRIED = 4


def check_model_fits_data(model: nn.Module, x: torch.Tensor, y: torch.Tensor, feature_names: list[str]) -> None:
    """One forward pass on the first few points: the model must take x as the data has it and give one
    prediction per point, shape (N,) or (N, 1), or per point and target, (N, targets). A ValueError
    says what it got and what is expected.

    The pass runs in eval mode without gradients (no batch-norm statistics updated, no dropout drawn),
    so a run is the same with or without this check.
    """
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else x.device
    # In the model's dtype: the points may be in the run's precision already (float64 under 64-true),
    # the model is converted to it only when the run starts.
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else x.dtype
    x, y = x[:POINTS_TRIED].to(device, dtype), y[:POINTS_TRIED].to(device, dtype)
    shape = tuple(x.shape)
    features = f"{len(feature_names)} feature{'s' if len(feature_names) != 1 else ''}: {', '.join(feature_names)}"
    takes = "(N,)" if len(shape) == 1 else f"(N, {', '.join(str(size) for size in shape[1:])})"
    gives = "one prediction per point"
    if y.dim() == 2:
        gives += f" for each of the {y.shape[1]} targets, shape (N, {y.shape[1]})"
    expected = f"it must take x of shape {takes} ({features}) and give {gives}"
    name = type(model).__name__
    try:
        with evaluating(model):
            output = model(x)
    except Exception as error:  # the model's own message, whatever it raises
        message = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{name} fails on the data's x of shape {shape}: {message}; {expected}") from None
    if not isinstance(output, torch.Tensor):
        raise ValueError(f"{name} returns a {type(output).__name__} for x of shape {shape}, not a tensor; {expected}")
    try:
        as_targets(output, y)
    except ValueError:
        raise ValueError(
            f"{name} maps the data's x of shape {shape} to an output of shape {tuple(output.shape)};"
            f" expected {expected_shape(y)}"
        ) from None
