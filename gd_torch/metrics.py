"""How well the trained model fits each split, at the final parameters: mse, rmse, mae and r2.

Computed once at the end of a run over every point of each split (``train`` always, ``val`` and
``test`` when the data holds them out), with the model in eval mode, in float64 from the model's
float32 predictions. The targets keep their units, so mse and mae are in y's units (squared for mse).
The points go through the model a chunk at a time and only float64 sums are kept, so the memory it
takes is bounded whatever the number of points.
"""

import math

import torch

from gd_torch.models import as_targets, evaluating

NAMES = ("mse", "rmse", "mae", "r2")
CHUNK = 1 << 20  # points per forward pass


def regression_metrics(prediction: torch.Tensor, y: torch.Tensor) -> dict[str, float | None]:
    """mse, rmse, mae and r2 = 1 - SSE / SST of predictions against targets; r2 is None (undefined)
    when every target is the same."""
    return model_metrics(lambda _: prediction, prediction, y, chunk=len(y))


def model_metrics(model, x: torch.Tensor, y: torch.Tensor, chunk: int = CHUNK) -> dict[str, float | None]:
    """The metrics of ``model``'s predictions for ``x`` against ``y``."""
    n = len(y)
    y_mean = sum(y[i : i + chunk].double().sum() for i in range(0, n, chunk)) / n
    sse = sae = sst = torch.zeros((), dtype=torch.float64, device=y.device)
    for i in range(0, n, chunk):
        targets = y[i : i + chunk].double()
        error = as_targets(model(x[i : i + chunk]), y[i : i + chunk]).double() - targets
        sse, sae = sse + error.square().sum(), sae + error.abs().sum()
        sst = sst + (targets - y_mean).square().sum()
    sse, sae, sst = torch.stack([sse, sae, sst]).tolist()  # one device sync
    mse = sse / n
    return {
        "mse": mse,
        "rmse": math.sqrt(mse) if math.isfinite(mse) else math.inf,
        "mae": sae / n,
        "r2": 1 - sse / sst if sst > 0 else None,
    }


def split_metrics(model: torch.nn.Module, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """``{split: {name: value}}`` of ``model`` at its current parameters, in eval mode."""
    with evaluating(model):
        return {name: model_metrics(model, x, y) for name, (x, y) in splits.items()}
