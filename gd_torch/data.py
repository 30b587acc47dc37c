"""Where the points come from: inline in the config, a table (a file or a DataFrame), or a synthetic line; how they are
split into training, validation and test points; and how the features are standardized.

Every DataModule here puts all its points on the training device once, in ``setup``, and hands out
batches that are the same tensors (full batch) or slices of them (mini-batches): no per-step copy
from the host, no per-sample collation. ``splits`` gives every split whole, for measurements over all
of its points (the final loss, the metrics, the pictures).
"""

import math
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch

from gd_torch.adapters.lightning import batches_done_this_epoch
from gd_torch.batches import Batch, Batches, FullBatch, OneBatch
from gd_torch.schema import Schema
from gd_torch.splits import Resident, Split, converter

__all__ = [
    "Batches",
    "CSVPoints",
    "FullBatch",
    "HandedDataModule",
    "OneBatch",
    "PointData",
    "Points",
    "SyntheticLine",
    "TablePoints",
    "handing",
]
from gd_torch.splits import SPLITS  # noqa: E402


@dataclass
class Features:
    """What the model's input columns are: their names and, with ``standardize``, the mean and standard
    deviation of each over the training split (in the points' dtype: float32, float64 under 64-true;
    shape () for one feature, (F,) for several; a one-hot column of a categorical one keeps its 0/1
    values: mean 0, standard deviation 1)."""

    names: list[str]
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


class PointData(pl.LightningDataModule):
    """Points on the training device: Points, TablePoints, SyntheticLine, or a subclass of your own.

    The common part of them: held-out splits, standardization, device placement, full batch or
    shuffled mini-batches. Subclasses say where the points come from in ``make_points``.

    Args:
        batch_size: ``null`` (or >= the number of points) is full-batch gradient descent, the article's
            case: every step sees all training points, unshuffled, in one open-ended epoch. A smaller
            ``batch_size`` is mini-batch SGD: each epoch draws a permutation on the device from a
            generator seeded by ``seed`` and the epoch, and its batches are consecutive slices of the
            permuted points (the last one may be smaller).
        seed: Seeds the split into train/val/test and the mini-batch shuffles.
        standardize: Z-score each feature of x with the mean and standard deviation of the training
            split. The statistics travel with the run (checkpoint, ``load_run``), so a trained model
            still takes raw x; the targets keep their units.
        val_fraction: The share of the points held out for validation (``val/loss``, metrics).
        test_fraction: The share of the points held out for testing (metrics at the end).

    The split is one permutation of the points seeded by ``seed``, the same on every process and after
    a resume; each split keeps the points' original order. Under several processes (Lightning's DDP)
    each one trains on its own contiguous shard of the training split, without the padding by
    repeated samples that a DistributedSampler adds; every process takes the same number of batches
    per epoch (a short shard's last batch may be empty).
    """

    def __init__(
        self,
        batch_size: int | None = None,
        seed: int = 0,
        standardize: bool = False,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or null (full batch), got {batch_size}")
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not (math.isfinite(fraction) and 0 <= fraction < 1):
                raise ValueError(f"{name} must be a number in [0, 1) (0 = no such split), got {fraction}")
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 so that points are left to train on,"
                f" got {val_fraction} + {test_fraction}"
            )
        self.batch_size = batch_size
        self.seed = seed
        self.standardize = standardize
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.splits: dict[str, Batch] = {}
        self.features: Features | None = None
        self.schema: Schema | None = None  # set when built where the columns are known; else made in setup

    def make_points(self, device: torch.device) -> Batch:
        """All points as float32 tensors on ``device``: x of shape (N,) or (N, features), y of shape
        (N,) or (N, targets)."""
        raise NotImplementedError

    def make_held_out(self, device: torch.device) -> dict[str, Batch]:
        """Splits that come apart from ``make_points`` (``val``, ``test``), e.g. from files of their own."""
        return {}

    def known_schema(self) -> Schema | None:
        """The model's inputs and outputs by name, where they are known before the points are made (the
        command sizes the model from them); None for a subclass that knows them only from its points."""
        return self.schema

    def feature_names(self, count: int) -> list[str]:
        """The names of x's columns: ``x`` for one feature, ``x1``, ``x2``, ... for several."""
        return ["x"] if count == 1 else [f"x{i}" for i in range(1, count + 1)]

    def target_name(self) -> str:
        """What y is called on the pictures' axes."""
        return ", ".join(self.schema.y) if self.schema else "y"

    def setup(self, stage: str) -> None:
        if self.splits:
            return  # made once (the command checks shapes before Lightning sets up)
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        splits = self._split(*self.make_points(device))
        splits |= self.make_held_out(device)
        convert = converter(self.trainer)
        if convert:  # in the run's precision (float64 under 64-true) before anything is computed from them
            splits = {name: convert(points) for name, points in splits.items()}
        x, y = splits["train"]
        if self.schema is None:  # unnamed columns: x or x1, x2, ...; y or y1, y2, ...
            targets = 1 if y.dim() == 1 else y.shape[1]
            y_names = ["y"] if targets == 1 else [f"y{i}" for i in range(1, targets + 1)]
            self.schema = Schema(self.feature_names(1 if x.dim() == 1 else x.shape[1]), y_names)
        self.features = Features(self.schema.feature_names)
        if self.standardize:
            self.features.mean, self.features.std = self._statistics(x)
            splits = {name: (standardized(sx, self.features), sy) for name, (sx, sy) in splits.items()}
        self.splits = {name: splits[name] for name in SPLITS if name in splits}

    def split_codes(self, n: int) -> torch.Tensor | None:
        """Which split each of the ``n`` points is in (int8 on the CPU: 0 train, 1 val, 2 test), or None
        when nothing is held out (the article's case: the points as given). One byte a point, whatever
        the source: a streamed table looks its rows up here by index."""
        sizes = {"val": round(self.val_fraction * n), "test": round(self.test_fraction * n)}
        for name, size in sizes.items():
            if size == 0 and getattr(self, f"{name}_fraction") > 0:
                raise ValueError(
                    f"{name}_fraction: {getattr(self, f'{name}_fraction')} of {n} points is no point at all;"
                    f" use a larger fraction or more points"
                )
        if n - sizes["val"] - sizes["test"] < 1:
            raise ValueError(f"val_fraction and test_fraction leave none of the {n} points to train on")
        if not (sizes["val"] or sizes["test"]):
            return None
        # One permutation from a CPU generator: the same split on every device, process and resume
        # (int32 draws the same permutation as int64, in half the memory).
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed), dtype=torch.int32)
        codes = torch.zeros(n, dtype=torch.int8)
        codes[order[: sizes["val"]]] = 1
        codes[order[sizes["val"] : sizes["val"] + sizes["test"]]] = 2
        return codes

    def split_rows(self, n: int) -> dict[str, torch.Tensor] | None:
        """Which of the ``n`` points go to each split (CPU indices, each split in the points' order), or
        None when nothing is held out."""
        codes = self.split_codes(n)
        if codes is None:
            return None
        rows = {name: (codes == code).nonzero().reshape(-1) for code, name in enumerate(SPLITS)}
        return {name: at for name, at in rows.items() if len(at)}

    def _split(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Batch]:
        rows = self.split_rows(len(y))
        if rows is None:
            return {"train": (x, y)}
        return {name: (x[at.to(y.device)], y[at.to(y.device)]) for name, at in rows.items()}

    def _statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each feature's mean and (population) standard deviation over the training split, computed in
        float64, given in x's dtype."""
        x64 = x.double()
        mean, std = x64.mean(dim=0), x64.std(dim=0, correction=0)
        categorical = self.schema.categorical_features
        if any(categorical):  # one-hot columns keep their 0/1 values
            kept = torch.tensor(categorical, device=x.device)
            mean, std = mean.where(~kept, 0.0), std.where(~kept, 1.0)
        constant = (std == 0).reshape(-1).nonzero().reshape(-1).tolist()
        if constant:
            i = constant[0]
            value = mean.reshape(-1)[i].item()
            raise ValueError(
                f"standardize: feature {self.features.names[i]!r} is constant ({value:g}) in the training split,"
                " so it cannot be standardized; drop it from x or set standardize: false"
            )
        return mean.to(x.dtype), std.to(x.dtype)

    def measured_splits(self, device: torch.device) -> "dict[str, Split]":
        """Each split, for what is measured over all of its points (gd_torch.splits)."""
        return {name: Resident(*self.splits[name]) for name in SPLITS if name in self.splits}

    def points_per_step(self, world: int) -> int:
        """How many training points one optimizer step takes over ``world`` processes: all of them at full
        batch, else each process's ``batch_size`` or its whole share where that is smaller (the rule of
        :meth:`train_dataloader`, asked of :meth:`full_batch`)."""
        shares = self.shares(world)
        return sum(shares) if self.full_batch(world) else sum(min(self.batch_size, share) for share in shares)

    def full_batch(self, world: int) -> bool:
        """Whether every step takes every training point over ``world`` processes: no batch_size, or one
        no smaller than the largest process's share. The one rule: the training loader and the step's
        bound both ask it."""
        return self.batch_size is None or self.batch_size >= max(self.shares(world))

    def shares(self, world: int) -> list[int]:
        """How many training points each of ``world`` processes trains on (contiguous shards, as
        ``tensor_split`` cuts them)."""
        total = len(self.splits["train"][1])
        return [total // world + (rank < total % world) for rank in range(world)]

    @property
    def points(self) -> Batch:
        """The training split (all points when nothing is held out)."""
        return self.splits["train"]

    def train_dataloader(self) -> "FullBatch | Batches":
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        x, y = self.splits["train"]
        x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]  # views, no copy
        if self.full_batch(world):
            return FullBatch(x, y)
        return Batches(
            x, y, self.batch_size, self.seed, epoch=self._epoch, shard_size=max(self.shares(world)),
            done=self._batches_done,
        )  # fmt: skip

    def val_dataloader(self) -> "OneBatch | list":
        # Each process validates its own shard in one batch; the module sums them over the processes.
        if "val" not in self.splits:
            return []
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        x, y = self.splits["val"]
        return OneBatch(x.tensor_split(world)[rank], y.tensor_split(world)[rank])

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer else 0

    def _batches_done(self) -> int:
        """How many batches of the current epoch have been trained on (for a mid-epoch checkpoint)."""
        return batches_done_this_epoch(self.trainer) if self.trainer else 0


def standardized(x: torch.Tensor, features: Features) -> torch.Tensor:
    """x in units of its training split's standard deviations from the mean, feature by feature."""
    return (x - features.mean) / features.std


def _check_finite(name: str, values: list[float]) -> None:
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] must be a finite number, got {values[bad]}")


class Points(PointData):
    """Points given inline in the config.

    Args:
        x: One value per point (one feature).
        y: The targets, as many as x.
        **options: ``batch_size``, ``seed``, ``standardize``, ``val_fraction``, ``test_fraction`` (see PointData).
    """

    def __init__(self, x: list[float], y: list[float], **options: Any) -> None:
        super().__init__(**options)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} points but y has {len(y)}; they must have the same length")
        if not x:
            raise ValueError("x and y hold no points; at least one is needed")
        _check_finite("x", x)
        _check_finite("y", y)
        self._x, self._y = x, y
        self.schema = Schema(["x"], ["y"])

    def make_points(self, device: torch.device) -> Batch:
        return torch.tensor(self._x, device=device), torch.tensor(self._y, device=device)


class SyntheticLine(PointData):
    """``n`` points of ``y = x @ slope + intercept + noise``, generated directly on the device.

    Args:
        n: The number of points.
        slope: One slope per feature (a number for one feature); x is standard normal.
        intercept: The line's intercept.
        noise_std: The standard deviation of the normal noise added to y.
        seed: Fixes the points, the split and the shuffling.
        **options: ``batch_size``, ``standardize``, ``val_fraction``, ``test_fraction`` (see PointData).
    """

    def __init__(
        self,
        n: int = 1000,
        slope: float | list[float] = 2.0,
        intercept: float = 1.0,
        noise_std: float = 0.0,
        seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(seed=seed, **options)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not (math.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}")
        slopes = [slope] if isinstance(slope, int | float) else list(slope)
        if not slopes:
            raise ValueError("slope must hold at least one value")
        _check_finite("slope", slopes)
        if not math.isfinite(intercept):
            raise ValueError(f"intercept must be a finite number, got {intercept}")
        self.n, self.slope, self.intercept, self.noise_std = n, slope, intercept, noise_std
        self.schema = Schema(self.feature_names(1 if isinstance(slope, int | float) else len(slopes)), ["y"])

    def make_points(self, device: torch.device) -> Batch:
        generator = torch.Generator(device=device).manual_seed(self.seed)
        slope = torch.tensor(self.slope, dtype=torch.float32, device=device)
        x = torch.randn((self.n, *slope.shape), generator=generator, device=device)
        y = (x @ slope if slope.dim() else x * slope) + self.intercept
        if self.noise_std:
            y += self.noise_std * torch.randn(self.n, generator=generator, device=device)
        return x, y


from gd_torch.table_points import CSVPoints, HandedDataModule, TablePoints, handing  # noqa: E402 (it builds on PointData)

# Its public home, as NumPy's set_module does: --help, errors and saved configs say gd_torch.data.TablePoints.
TablePoints.__module__ = __name__
