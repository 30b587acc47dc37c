"""A streamed table's splits, and how they reach the step: :class:`Streamed` (one split's chunks, for
what is measured over a whole split), :class:`EveryStep` (full batch: one pass a step, its chunks'
gradients summed by the module), :class:`OnePass` (validation) and :class:`StreamBatches` (shuffled
mini-batches through a buffer, resumable mid-epoch).
"""

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from gd_torch.schema import torch_dtype
from gd_torch.splits import Split, chosen_points, converter, gathered
from gd_torch.streams import StreamedTable

Batch = tuple[torch.Tensor, torch.Tensor]


class Streamed(Split):
    """One split of a streamed table, on ``device``: its chunks, in the pieces given (a process's share,
    or all of them)."""

    def __init__(self, table: StreamedTable, code: int, data: Any, device: torch.device, pieces=None) -> None:
        self.table, self.code, self.data, self.device = table, code, data, device
        self.pieces = table.pieces if pieces is None else pieces
        self.points = table.count(code) if pieces is None else None

    def chunks(self) -> Iterator[Batch]:
        features, convert = self.data.features, converter(self.data.trainer)
        mean, std = (
            (None, None) if features.mean is None else (features.mean.to(self.device), features.std.to(self.device))
        )
        # Standardized in place, in the chunk's own block, when the statistics are in its dtype.
        in_block = mean is not None and mean.dtype == torch_dtype(self.table.dtype)
        chunks = self.table.chunks(
            self.pieces, self.code, self.data.schema, *((mean, std) if in_block else (None, None)), self.device
        )
        if convert:  # float64 under 64-true, as Lightning converts a batch
            chunks = map(convert, chunks)
        if mean is not None and not in_block:  # statistics in the run's precision: standardized after it
            chunks = (((x - mean) / std, y) for x, y in chunks)
        yield from chunks

    def empty(self) -> Batch:
        """No points, in the shapes of the split's (x, y)."""
        schema = self.data.schema
        features, targets = len(schema.feature_names), len(schema.target_names)
        x = torch.zeros((0, features) if features > 1 else (0,), device=self.device)
        return x, torch.zeros((0, targets) if targets > 1 else (0,), device=self.device)

    def _gathered(self, chosen: torch.Tensor) -> Batch:
        """The split's points at these positions (sorted), gathered in one pass."""
        return gathered(self.chunks(), chosen) or self.empty()

    def subset(self, max_points: int) -> Batch:
        total = self.points
        if max_points and total > max_points:
            return self._gathered(chosen_points(total, max_points))
        return self._gathered(torch.arange(total))

    def spread(self, max_points: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        stride = max(1, math.ceil(self.points / max_points))  # every stride-th point, as a resident split's
        x, y = self._gathered(torch.arange(0, self.points, stride))
        return x, y, float(stride)


class EveryStep:
    """Full-batch descent over a streamed split: the same pass (a batch given as chunks) at every
    step, without end; the module sums the chunks' gradients into one update."""

    def __init__(self, split: Streamed) -> None:
        self.split = split

    def __iter__(self) -> Iterator[Streamed]:
        while True:
            yield self.split


class OnePass:
    """A streamed split's chunks, once per pass (validation)."""

    def __init__(self, split: Streamed) -> None:
        self.split = split

    def __iter__(self) -> Iterator[Batch]:
        return self.split.chunks()


class StreamBatches:
    """Shuffled mini-batches of a streamed training split, one epoch per pass.

    Each epoch takes this process's pieces in an order drawn from the seed and the epoch, through a
    shuffle buffer of ``buffer_rows`` rows (shuffled whole, its full batches handed out, the rest kept
    for the next fill). Resumable as :class:`gd_torch.batches.Batches` is: the state is the epoch and
    the batches done, and the first pass after a resume skips those. Every process takes ``steps``
    batches an epoch (a short shard's last ones are empty)."""

    def __init__(
        self, split: Streamed, batch_size: int, buffer_rows: int, seed: int, steps: int,
        epoch: Callable[[], int], done: Callable[[], int],
    ) -> None:  # fmt: skip
        self.split, self.batch_size, self.buffer_rows = split, batch_size, max(buffer_rows, batch_size)
        self.seed, self.steps, self.epoch, self.done = seed, steps, epoch, done
        self._resume: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self.steps

    def _batches(self, epoch: int) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * (epoch + 1))
        order = torch.randperm(len(self.split.pieces), generator=generator).tolist()
        pieces = [self.split.pieces[i] for i in order]
        one = Streamed(self.split.table, self.split.code, self.split.data, self.split.device, pieces=pieces)
        xs, ys, held = [], [], 0
        for x, y in one.chunks():
            xs.append(x)
            ys.append(y)
            held += len(y)
            if held >= self.buffer_rows:
                x_all, y_all = torch.cat(xs), torch.cat(ys)
                mixed = torch.randperm(held, generator=generator).to(y_all.device)
                x_all, y_all = x_all[mixed], y_all[mixed]
                full = held // self.batch_size * self.batch_size
                for start in range(0, full, self.batch_size):
                    yield x_all[start : start + self.batch_size], y_all[start : start + self.batch_size]
                xs, ys, held = [x_all[full:]], [y_all[full:]], held - full
        if held:
            x_all, y_all = torch.cat(xs), torch.cat(ys)
            mixed = torch.randperm(held, generator=generator).to(y_all.device)
            x_all, y_all = x_all[mixed], y_all[mixed]
            for start in range(0, held, self.batch_size):
                yield x_all[start : start + self.batch_size], y_all[start : start + self.batch_size]

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch()
        skip = self._resume[1] if self._resume and self._resume[0] == epoch else 0
        self._resume = None
        given = 0
        for batch in self._batches(epoch):
            if given >= skip:
                yield batch
            given += 1
        while given < self.steps:  # as many steps as the process with the most rows: empty batches
            if given >= skip:
                yield self.split.empty()
            given += 1

    def state_dict(self) -> dict:
        return {"epoch": self.epoch(), "batches_done": self.done()}

    def load_state_dict(self, state: dict) -> None:
        self._resume = (state["epoch"], state["batches_done"])
