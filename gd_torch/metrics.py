"""How well the trained model fits each split, at the final parameters: mse, rmse, mae and r2, and
accuracy when the target is a class (one-hot).

Computed once at the end of a run over every point of each split (``train`` always, ``val`` and
``test`` when the data holds them out), with the model in eval mode, in float64 from the model's
float32 predictions. The targets keep their units, so mse and mae are in y's units (squared for mse).
With several targets, each one's metrics are ``<target>/<name>`` and the plain names are their
averages over the targets (scikit-learn's ``uniform_average``; r2 over the targets where it is
defined). Accuracy is the share of points whose largest predicted value is at their class.
The points go through the model a chunk at a time and only float64 sums are kept, so the memory it
takes is bounded whatever the number of points.
"""

import math

import torch

from gd_torch.models import as_targets, evaluating

NAMES = ("mse", "rmse", "mae", "r2")
CHUNK = 1 << 20  # points per forward pass
Metrics = dict[str, float | None]


def regression_metrics(prediction: torch.Tensor, y: torch.Tensor) -> Metrics:
    """mse, rmse, mae and r2 = 1 - SSE / SST of predictions against targets; r2 is None (undefined)
    when every target is the same."""
    return model_metrics(lambda _: prediction, prediction, y, chunk=len(y))


def model_metrics(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk: int = CHUNK,
    target_names: list[str] | None = None,
    one_hot: bool = False,
) -> Metrics:
    """The metrics of ``model``'s predictions for ``x`` against ``y`` (shape (N,) or (N, targets))."""
    n = len(y)
    columns = y.reshape(n, -1)  # (N, targets)
    y_mean = sum(columns[i : i + chunk].double().sum(dim=0) for i in range(0, n, chunk)) / n
    zeros = torch.zeros(columns.shape[1], dtype=torch.float64, device=y.device)
    sse, sae, sst, hits = zeros, zeros, zeros, torch.zeros((), dtype=torch.float64, device=y.device)
    for i in range(0, n, chunk):
        targets = y[i : i + chunk]
        prediction = as_targets(model(x[i : i + chunk]), targets).double().reshape(len(targets), -1)
        targets = targets.double().reshape(len(targets), -1)
        error = prediction - targets
        sse, sae = sse + error.square().sum(dim=0), sae + error.abs().sum(dim=0)
        sst = sst + (targets - y_mean).square().sum(dim=0)
        if one_hot:
            hits = hits + (prediction.argmax(dim=1) == targets.argmax(dim=1)).sum()
    sse, sae, sst, hits = sse.tolist(), sae.tolist(), sst.tolist(), hits.item()  # a few device syncs
    each = [_metrics(sse[j], sae[j], sst[j], n) for j in range(len(sse))]
    averaged: Metrics = {name: _average([m[name] for m in each]) for name in NAMES}
    if one_hot:
        averaged["accuracy"] = hits / n
    if len(each) == 1:
        return averaged
    names = target_names or [f"y{j}" for j in range(1, len(each) + 1)]
    return averaged | {f"{target}/{name}": m[name] for target, m in zip(names, each, strict=True) for name in NAMES}


def _metrics(sse: float, sae: float, sst: float, n: int) -> Metrics:
    mse = sse / n
    return {
        "mse": mse,
        "rmse": math.sqrt(mse) if math.isfinite(mse) else math.inf,
        "mae": sae / n,
        "r2": 1 - sse / sst if sst > 0 else None,
    }


def _average(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def split_metrics(
    model: torch.nn.Module,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    target_names: list[str] | None = None,
    one_hot: bool = False,
) -> dict[str, Metrics]:
    """``{split: {name: value}}`` of ``model`` at its current parameters, in eval mode."""
    with evaluating(model):
        return {
            name: model_metrics(model, x, y, target_names=target_names, one_hot=one_hot)
            for name, (x, y) in splits.items()
        }
