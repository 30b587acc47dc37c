"""How the points reach the training step: the whole split as one batch (validation), the same
on-device tensors at every step (full batch), or shuffled on-device slices (mini-batches). None of
them copies from the host or collates samples; each is a class because Lightning reads a list as
several dataloaders."""

import math
from collections.abc import Callable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class OneBatch:
    """A whole split as one batch, once per pass (a class: Lightning reads a list as several dataloaders)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batch = (x, y)

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Batch]:
        yield self.batch


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
    Lightning reads a list as several dataloaders).

    It is resumable the way Lightning asks (``state_dict``/``load_state_dict``, saved in checkpoints):
    the state is the epoch and how many of its batches were trained on, and the first pass after a
    resume skips those, so a run checkpointed mid-epoch continues with the very batches it would have
    drawn. The permutation itself comes back from the seed and the epoch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        epoch: Callable[[], int],
        shard_size: int | None = None,
        done: Callable[[], int] | None = None,
    ) -> None:
        self.x, self.y = x, y
        # Every process steps as often as the one with the largest shard.
        size = len(y) if shard_size is None else shard_size
        self.batch_size = batch_size
        self.steps = math.ceil(size / batch_size)
        self.seed = seed
        self.epoch = epoch
        self.done = done or (lambda: 0)
        self._resume: tuple[int, int] | None = None  # (epoch, batches to skip) after load_state_dict

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch()
        generator = torch.Generator(device=self.y.device)
        generator.manual_seed(self.seed + 1_000_003 * (epoch + 1))
        order = torch.randperm(len(self.y), generator=generator, device=self.y.device)
        x, y = self.x[order], self.y[order]  # one gather per epoch; batches are views of it
        skip = self._resume[1] if self._resume and self._resume[0] == epoch else 0
        self._resume = None
        for start in range(skip * self.batch_size, self.steps * self.batch_size, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch(), "batches_done": self.done()}

    def load_state_dict(self, state: dict) -> None:
        self._resume = (state["epoch"], state["batches_done"])
