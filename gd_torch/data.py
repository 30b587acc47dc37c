"""Where the points come from: inline in the config, a CSV file, or a synthetic line.

Every DataModule here puts all its points on the training device once, in ``setup``, and hands out
batches that are the same tensors (full batch) or slices of them (mini-batches): no per-step copy
from the host, no per-sample collation. ``points`` gives all of them, for whole-data measurements.
"""

import csv
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning.pytorch as pl
import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class PointData(pl.LightningDataModule):
    """The common part: device placement, full batch or shuffled mini-batches.

    ``batch_size=None`` (or >= the number of points) is full-batch gradient descent, the article's
    case: every step sees all points, unshuffled, in one open-ended epoch. A smaller ``batch_size``
    is mini-batch SGD: each epoch draws a permutation on the device from a generator seeded by
    ``seed`` and the epoch, and its batches are consecutive slices of the permuted points (the last
    one may be smaller). Subclasses say where the points come from in ``make_points``.

    Under several processes (Lightning's DDP) each one trains on its own contiguous shard of the
    points, without the padding by repeated samples that a DistributedSampler adds; every process
    takes the same number of batches per epoch (a short shard's last batch may be empty).
    """

    def __init__(self, batch_size: int | None = None, seed: int = 0) -> None:
        super().__init__()
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or null (full batch), got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None

    def make_points(self, device: torch.device) -> Batch:
        """All points as float32 tensors on ``device``: x of shape (N,) or (N, features), y (N,)."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if self.x is None:
            device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
            self.x, self.y = self.make_points(device)

    @property
    def points(self) -> Batch:
        return self.x, self.y

    def train_dataloader(self) -> "FullBatch | Batches":
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        x, y = self.x.tensor_split(world)[rank], self.y.tensor_split(world)[rank]  # views, no copy
        largest_shard = math.ceil(len(self.y) / world)
        if self.batch_size is None or self.batch_size >= largest_shard:
            return FullBatch(x, y)
        return Batches(x, y, self.batch_size, self.seed, epoch=self._epoch, shard_size=largest_shard)

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer else 0


class FullBatch:
    """Full-batch descent: the same on-device tensors at every step, without end (``max_steps``
    ends the run). With no length, Lightning runs it as one open-ended epoch: an epoch boundary
    per step would cost ~0.15 ms of Lightning's bookkeeping, a whole step's worth on five points.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batch = (x, y)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.batch


class Batches:
    """One epoch of shuffled mini-batches over on-device tensors (a class rather than a list:
    Lightning reads a list as several dataloaders)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        epoch: Callable[[], int],
        shard_size: int | None = None,
    ) -> None:
        self.x, self.y = x, y
        # Every process steps as often as the one with the largest shard.
        size = len(y) if shard_size is None else shard_size
        self.batch_size = batch_size
        self.steps = math.ceil(size / batch_size)
        self.seed = seed
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Batch]:
        generator = torch.Generator(device=self.y.device)
        generator.manual_seed(self.seed + 1_000_003 * (self.epoch() + 1))
        order = torch.randperm(len(self.y), generator=generator, device=self.y.device)
        x, y = self.x[order], self.y[order]  # one gather per epoch; batches are views of it
        for start in range(0, self.steps * self.batch_size, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]


def _check_finite(name: str, values: list[float]) -> None:
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] must be a finite number, got {values[bad]}")


class Points(PointData):
    """Points given inline in the config: ``x`` and ``y`` lists of the same length."""

    def __init__(self, x: list[float], y: list[float], batch_size: int | None = None, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} points but y has {len(y)}; they must have the same length")
        if not x:
            raise ValueError("x and y hold no points; at least one is needed")
        _check_finite("x", x)
        _check_finite("y", y)
        self._x, self._y = x, y

    def make_points(self, device: torch.device) -> Batch:
        return torch.tensor(self._x, device=device), torch.tensor(self._y, device=device)


class CSVPoints(PointData):
    """Points from a CSV file with a header row: ``x`` names one column (or a list of columns, one
    per feature), ``y`` the target column. The file is read and checked when the config is."""

    def __init__(
        self,
        path: str,
        x: str | list[str],
        y: str,
        batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, seed)
        self.path = path
        self.x_columns = [x] if isinstance(x, str) else list(x)
        if not self.x_columns:
            raise ValueError("x must name at least one column")
        self._x, self._y = self._read(Path(path), y)

    def _read(self, path: Path, y_column: str) -> tuple[list[list[float]], list[float]]:
        if not path.is_file():
            raise ValueError(f"path: no such file: {path}")
        with path.open(newline="") as file:
            rows = csv.reader(file)
            header = [name.strip() for name in next(rows, [])]
            if not header:
                raise ValueError(f"path: {path} is empty; it needs a header row naming its columns")
            for key, columns in (("x", self.x_columns), ("y", [y_column])):
                missing = [c for c in columns if c not in header]
                if missing:
                    raise ValueError(f"{key}: {path} has no column {missing[0]!r}; it has {', '.join(header)}")
            x_at = [header.index(c) for c in self.x_columns]
            y_at = header.index(y_column)
            xs, ys = [], []
            for line, row in enumerate(rows, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise ValueError(f"path: {path} line {line} has {len(row)} cells; the header has {len(header)}")
                xs.append([_number(path, line, header[i], row[i]) for i in x_at])
                ys.append(_number(path, line, y_column, row[y_at]))
        if not ys:
            raise ValueError(f"path: {path} has a header but no data rows")
        return xs, ys

    def make_points(self, device: torch.device) -> Batch:
        x = torch.tensor(self._x, device=device)
        if len(self.x_columns) == 1:
            x = x.squeeze(-1)  # one feature: shape (N,), as a Line expects
        return x, torch.tensor(self._y, device=device)


def _number(path: Path, line: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"path: {path} line {line}, column {column!r}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"path: {path} line {line}, column {column!r}: {cell!r} is not a finite number")
    return value


class SyntheticLine(PointData):
    """``n`` points of ``y = x @ slope + intercept + noise``, generated directly on the device.

    ``x`` is standard normal, one column per entry of ``slope`` (a number for one feature); the noise
    is normal with standard deviation ``noise_std``. ``seed`` fixes the points and the shuffling.
    """

    def __init__(
        self,
        n: int = 1000,
        slope: float | list[float] = 2.0,
        intercept: float = 1.0,
        noise_std: float = 0.0,
        seed: int = 0,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(batch_size, seed)
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

    def make_points(self, device: torch.device) -> Batch:
        generator = torch.Generator(device=device).manual_seed(self.seed)
        slope = torch.tensor(self.slope, dtype=torch.float32, device=device)
        x = torch.randn((self.n, *slope.shape), generator=generator, device=device)
        y = (x @ slope if slope.dim() else x * slope) + self.intercept
        if self.noise_std:
            y += self.noise_std * torch.randn(self.n, generator=generator, device=device)
        return x, y
