"""How well the trained model fits each split, at the final parameters: mse, rmse, mae and r2.

Computed once at the end of a run over every point of each split (``train`` always, ``val`` and
``test`` when the data holds them out), with the model in eval mode, in float64 from the model's
float32 predictions. The targets keep their units, so mse and mae are in y's units (squared for mse).
"""

import math

import lightning.pytorch as pl
import torch

from gd_torch.data import splits_of
from gd_torch.models import as_targets, evaluating

NAMES = ("mse", "rmse", "mae", "r2")
CHUNK = 1 << 20  # points per forward pass: bounds the activations of a large model on many points


def predictions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One prediction per point of (x, y), a chunk of points at a time."""
    with evaluating(model):
        parts = [as_targets(model(x[i : i + CHUNK]), y[i : i + CHUNK]) for i in range(0, len(y), CHUNK)]
    return torch.cat(parts)


def regression_metrics(prediction: torch.Tensor, y: torch.Tensor) -> dict[str, float | None]:
    """mse, rmse, mae and r2 = 1 - SSE / SST; r2 is None (undefined) when every target is the same."""
    prediction, y = prediction.double(), y.double()
    error = prediction - y
    sse = error.square().sum().item()
    sst = (y - y.mean()).square().sum().item()
    mse = sse / len(y)
    return {
        "mse": mse,
        "rmse": math.sqrt(mse) if math.isfinite(mse) else math.inf,
        "mae": error.abs().mean().item(),
        "r2": 1 - sse / sst if sst > 0 else None,
    }


def split_metrics(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, dict[str, float | None]]:
    """``{split: {name: value}}`` at the current parameters, computed once per step count however
    many callbacks ask for it."""
    cached = getattr(pl_module, "_split_metrics", None)
    if cached is None or cached[0] != trainer.global_step:
        model = pl_module.model
        values = {
            name: regression_metrics(predictions(model, x, y), y)
            for name, (x, y) in splits_of(trainer.datamodule).items()
        }
        cached = (trainer.global_step, values)
        pl_module._split_metrics = cached
    return cached[1]
