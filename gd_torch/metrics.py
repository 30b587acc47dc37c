"""How well the trained model fits each split, at the final parameters: mse, rmse, mae and r2, and
accuracy when the target is a class (one-hot).

Computed once at the end of a run over every point of each split (``train`` always, ``val`` and
``test`` when the data holds them out), with the model in eval mode, in float64 from the model's
float32 predictions. The targets keep their units, so mse and mae are in y's units (squared for mse).
With several targets, each one's metrics are ``<target>/<name>`` and the plain names are their
averages over the targets (scikit-learn's ``uniform_average``; r2 over the targets where it is
defined). Accuracy is the share of points whose largest predicted value is at their class.
The points go through the model a chunk at a time (a split's chunks) and only float64 sums are kept,
so the memory it takes is bounded whatever the number of points.
"""

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from gd_torch.models import as_targets, evaluating

if TYPE_CHECKING:
    from gd_torch.splits import Split

NAMES = ("mse", "rmse", "mae", "r2")
Metrics = dict[str, float | None]


def regression_metrics(prediction: torch.Tensor, y: torch.Tensor) -> Metrics:
    """mse, rmse, mae and r2 = 1 - SSE / SST of predictions against targets; r2 is None (undefined)
    when every target is the same."""
    return model_metrics(lambda given: given, [(prediction, y)])


def model_metrics(
    model,
    chunks: Iterable[tuple[torch.Tensor, torch.Tensor]],
    target_names: list[str] | None = None,
    one_hot: bool = False,
) -> Metrics:
    """The metrics of ``model``'s predictions against the targets, over chunks of ``(x, y)`` (y of
    shape (N,) or (N, targets)), in one pass: the targets' spread (SST) is merged chunk by chunk
    (Chan, Golub and LeVeque's update of a mean and a sum of squared deviations), so a stream is read
    once and no chunk is kept."""
    n, sse, sae, mean, spread, hits = 0, 0.0, 0.0, 0.0, 0.0, 0
    for x, y in chunks:
        k = len(y)
        if k == 0:
            continue
        targets = y.double().reshape(k, -1)
        prediction = as_targets(model(x), y).double().reshape(k, -1)
        error = prediction - targets
        sse, sae = sse + error.square().sum(dim=0), sae + error.abs().sum(dim=0)
        chunk_mean = targets.mean(dim=0)
        chunk_spread = (targets - chunk_mean).square().sum(dim=0)
        delta = chunk_mean - mean
        mean = mean + delta * (k / (n + k))
        spread = spread + chunk_spread + delta.square() * (n * k / (n + k))
        if one_hot:
            hits += (prediction.argmax(dim=1) == targets.argmax(dim=1)).sum()
        n += k
    if n == 0:
        raise ValueError("the split has no points")
    sse, sae, sst = sse.tolist(), sae.tolist(), spread.tolist()  # a few device syncs
    each = [_metrics(sse[j], sae[j], sst[j], n) for j in range(len(sse))]
    averaged: Metrics = {name: _average([m[name] for m in each]) for name in NAMES}
    if one_hot:
        averaged["accuracy"] = int(hits) / n
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
    splits: "dict[str, Split]",
    target_names: list[str] | None = None,
    one_hot: bool = False,
) -> dict[str, Metrics]:
    """``{split: {name: value}}`` of ``model`` at its current parameters, in eval mode."""
    with evaluating(model):
        return {
            name: model_metrics(model, split.chunks(), target_names=target_names, one_hot=one_hot)
            for name, split in splits.items()
        }
