"""Checks made before a run directory is claimed, so that what gd_torch cannot run is one ``error:``
line and not a failed run: the trainer's settings, and the model and the data together."""

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gd_torch.errors import ConfigError
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


def check_trainer_settings(trainer: Any) -> None:
    """The trainer's settings (its config section) that gd_torch cannot take."""
    if not (isinstance(trainer.max_steps, int) and trainer.max_steps >= 1):
        raise ConfigError(f"trainer.max_steps must be >= 1 (one step = one update), got {trainer.max_steps}")
    accumulate = trainer.accumulate_grad_batches
    if accumulate != 1:  # one step is one batch here: its rows, its loss and its bound
        raise ConfigError(
            f"trainer.accumulate_grad_batches is {accumulate}; gd_torch takes one batch a step (full batch"
            " takes every point already): for larger steps give a larger data.batch_size"
        )
    interval = trainer.val_check_interval
    if isinstance(interval, int | float) and not isinstance(interval, bool) and not interval > 0:
        raise ConfigError(f"trainer.val_check_interval must be > 0 (an int: every that many steps), got {interval}")
    if trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator is {trainer.accelerator!r} but no CUDA GPU is available here;"
            " use 'auto' (CUDA when available, else the CPU) or 'cpu'"
        )


def check_batch_limit(limit: int | float, train_loader: Callable[[], Any], instead: str) -> None:
    """``trainer.limit_train_batches`` against the training loader (made only for a fraction: a streamed
    table's counts its pieces' rows): Lightning refuses a fraction of a loader without a length only
    once training starts, in its own words. ``instead``: what to do."""
    if isinstance(limit, float) and limit != 1.0 and not has_length(train_loader()):
        raise ConfigError(f"trainer.limit_train_batches is {limit}; {instead}")


def has_length(loader: Any) -> bool:
    """Whether a loader knows its number of batches (a DataLoader over an IterableDataset raises)."""
    try:
        len(loader)
    except TypeError:
        return False
    return True


def batch_dtype_problem(name: str, x: torch.Tensor, y: torch.Tensor, precision: Any, converted: bool) -> str | None:
    """What is wrong with the dtypes of a DataModule's first batch, or None. ``converted``: whether
    Lightning converts a batch under the run's precision (64-true, 16-true); otherwise float64 meets
    a float32 model."""
    for role, values in (("x", x), ("y", y)):
        if not values.is_floating_point():  # a Linear layer refuses integers, and the loss is of reals
            return (
                f"the train_dataloader of {name} yields {role} of dtype {values.dtype}; the model takes"
                f" floating-point tensors: convert them in your Dataset ({role}.float())"
            )
    if x.dtype == torch.float64 and not converted:
        return (
            f"the train_dataloader of {name} yields x of dtype torch.float64, and the model trains in float32"
            f" (trainer.precision {precision}): convert x in your Dataset (x.float()), or train in float64"
            " (--trainer.precision 64-true)"
        )
    return None
