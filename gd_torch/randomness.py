"""A measurement's random streams, kept apart from the run's.

A DataModule's dataloader read to measure a split (the final loss, the metrics, the pictures, the
curvature, the first batch that sizes the model) is read as built, its sampler included, and a
shuffled one draws its order, and its workers their seeds, from torch's generator (or its own). Each
batch of such a read is fetched on streams of the measurement's own, seeded the same way every time,
and the run's streams are put back between fetches: every measurement reads the same points in the
same order, and the training that follows (its shuffles, its dropout) is the same with or without it.
"""

import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

SEED = 0
_END = object()


class Streams:
    """torch's CPU generator, Python's and NumPy's global ones, and the generators a loader holds (its
    own, its sampler's, its batch sampler's)."""

    def __init__(self, loader: Any) -> None:
        holders = [loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)]
        holders.append(getattr(holders[2], "sampler", None))
        found = {id(g): g for h in holders if isinstance(g := getattr(h, "generator", None), torch.Generator)}
        self.generators = [g for g in found.values() if g is not torch.default_generator]

    def state(self) -> tuple:
        return torch.get_rng_state(), random.getstate(), np.random.get_state(), [g.get_state() for g in self.generators]

    def restore(self, state: tuple) -> None:
        torch_state, python_state, numpy_state, generator_states = state
        torch.set_rng_state(torch_state)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        for generator, saved in zip(self.generators, generator_states, strict=True):
            generator.set_state(saved)

    def seeded(self) -> tuple:
        """The state every measurement starts from (the current one left as it was)."""
        run = self.state()
        torch.default_generator.manual_seed(SEED)
        random.seed(SEED)
        np.random.seed(SEED)
        for generator in self.generators:
            generator.manual_seed(SEED)
        own = self.state()
        self.restore(run)
        return own


def measured(loader: Iterable) -> Iterator:
    """The loader's batches, each fetched on the measurement's own random streams."""
    streams = Streams(loader)
    own = streams.seeded()
    iterator = None
    while True:
        run = streams.state()
        streams.restore(own)
        try:
            if iterator is None:
                iterator = iter(loader)
            batch = next(iterator, _END)
        finally:
            own = streams.state()
            streams.restore(run)
        if batch is _END:
            return
        yield batch
