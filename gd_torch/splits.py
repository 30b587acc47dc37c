"""A split of the data as something you iterate: chunks of ``(x, y)`` on the model's device.

Whatever needs a whole split (the final loss, the metrics, the optimum, the pictures, the curvature)
reads it through a :class:`Split`, so one path serves the points a ``PointData`` holds on the device
(one chunk, or a few large ones) and any ``LightningDataModule`` (its dataloaders, batch by batch).
Sums and counts accumulate across chunks; what needs tensors (the curvature, the pictures) takes a
bounded subset.
"""

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import Precision
from torch.utils.data import DataLoader

from gd_torch.errors import named
from gd_torch.randomness import measured

Batch = tuple[torch.Tensor, torch.Tensor]
Convert = Callable[[Batch], Batch]
CHUNK = 1 << 20  # rows per chunk of a split held on the device
SPLITS = ("train", "val", "test")


class Split:
    """A split's points, a chunk at a time. ``points`` is their number where it is known without a pass
    over them (None otherwise)."""

    points: int | None = None

    def chunks(self) -> Iterator[Batch]:
        raise NotImplementedError

    def subset(self, max_points: int) -> Batch:
        """At most ``max_points`` of the points (all of them when ``max_points`` is 0 or larger), a fixed
        random choice (seeded: the same every time, the run's random streams untouched), in order."""
        raise NotImplementedError

    def spread(self, max_points: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """At most ``max_points`` points spread over the split, for a picture, and how many points each
        one stands for (a sum over them times that is the sum over the split)."""
        x, y = self.subset(max_points)
        total = self.points if self.points is not None else len(y)
        return x, y, total / len(y)


class Resident(Split):
    """Points held as tensors on the device (a ``PointData``'s)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.points = len(y)

    def chunks(self) -> Iterator[Batch]:
        for i in range(0, len(self.y), CHUNK):
            yield self.x[i : i + CHUNK], self.y[i : i + CHUNK]

    def subset(self, max_points: int) -> Batch:
        if not max_points or len(self.y) <= max_points:
            return self.x, self.y
        chosen = chosen_points(len(self.y), max_points).to(self.y.device)
        return self.x[chosen], self.y[chosen]

    def spread(self, max_points: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        stride = max(1, math.ceil(len(self.y) / max_points))  # every stride-th point: evenly spread, no copy
        return self.x[::stride], self.y[::stride], float(stride)


def is_batch(batch: object) -> bool:
    """Whether a dataloader's batch is ``(x, y)``: two tensors."""
    return isinstance(batch, tuple | list) and len(batch) == 2 and all(torch.is_tensor(t) for t in batch)


def batch_in_words(batch: object) -> str:
    """What a dataloader yields instead of ``(x, y)``: ``no batch``, ``a dict``, ``3 items a batch``."""
    if batch is None:
        return "no batch"
    if isinstance(batch, tuple | list) and len(batch) != 2:
        return f"{len(batch)} items a batch"
    if isinstance(batch, tuple | list):
        return f"({', '.join(type(t).__name__ for t in batch)})"
    return f"a {type(batch).__name__}"


class Loaded(Split):
    """A split a DataModule's dataloader hands out, as built (its sampler, collate_fn, drop_last), batch by
    batch, each batch as training gets it: through the DataModule's batch hooks to ``device``
    (:func:`as_trained`), then converted to the run's precision. Read on random streams of its own
    (:func:`gd_torch.randomness.measured`): the same points in the same order every time, nothing drawn
    from the run's."""

    def __init__(
        self,
        datamodule: pl.LightningDataModule,
        loader: Iterable,
        device: torch.device,
        name: str,
        convert: "Convert | None" = None,
    ) -> None:
        self.loader, self.device, self.name, self.convert = loader, device, name, convert
        self.datamodule = datamodule
        self.points = points_of(loader)

    def chunks(self) -> Iterator[Batch]:
        for batch in measured(self.loader):
            batch = as_trained(self.datamodule, batch, self.device)
            if not is_batch(batch):
                raise ValueError(
                    f"the {self.name} dataloader yields {batch_in_words(batch)}; gd_torch measures batches of"
                    " (x, y) tensors"
                )
            x, y = batch
            yield self.convert((x, y)) if self.convert else (x, y)

    def subset(self, max_points: int) -> Batch:
        if max_points and self.points is not None and self.points > max_points:
            return gathered(self.chunks(), chosen_points(self.points, max_points))
        xs, ys, seen = [], [], 0
        for x, y in self.chunks():  # all of them, or, with no length to choose from, the first max_points
            xs.append(x)
            ys.append(y)
            seen += len(y)
            if max_points and seen >= max_points:
                break
        x, y = torch.cat(xs), torch.cat(ys)
        return (x[:max_points], y[:max_points]) if max_points else (x, y)


def chosen_points(total: int, max_points: int) -> torch.Tensor:
    """``max_points`` of ``total`` positions, in order: a fixed random choice (seeded, from a generator of
    its own, so the run's random streams are not drawn from)."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    return torch.randperm(total, generator=generator)[:max_points].sort().values


def gathered(chunks: Iterable[Batch], chosen: torch.Tensor) -> Batch | None:
    """The points at these positions (sorted) of a split read chunk by chunk, in one pass; None when
    none of them is there."""
    xs, ys, seen = [], [], 0
    for x, y in chunks:
        at = chosen[(chosen >= seen) & (chosen < seen + len(y))] - seen
        if len(at):
            xs.append(x[at.to(x.device)])
            ys.append(y[at.to(y.device)])
        seen += len(y)
    return (torch.cat(xs), torch.cat(ys)) if xs else None


def splits_of(datamodule: pl.LightningDataModule | None, device: torch.device | None = None) -> dict[str, Split]:
    """Every split the data has: ``train`` always (when it can be had), ``val`` and ``test`` when held out.

    A ``PointData``'s are its tensors; another DataModule's are its dataloaders as it builds them
    (:class:`Loaded`). A split whose dataloader is not there is left out."""
    if datamodule is None:
        return {}
    if hasattr(datamodule, "measured_splits"):  # a PointData: its tensors, or its streamed table
        return datamodule.measured_splits(device or torch.device("cpu"))
    found, convert = {}, converter(getattr(datamodule, "trainer", None))
    for name in SPLITS:
        loader = dataloader(datamodule, name)
        if loader is not None:
            found[name] = Loaded(datamodule, loader, device or torch.device("cpu"), name, convert)
    return found


def converted_dtype(trainer: "pl.Trainer | None") -> torch.dtype:
    """The dtype a float32 batch has when it reaches the model (float64 under 64-true)."""
    convert = converter(trainer)
    return convert((torch.zeros(0), torch.zeros(0)))[0].dtype if convert else torch.float32


def converter(trainer: "pl.Trainer | None") -> "Convert | None":
    """How Lightning converts a batch for the model under the run's precision (to float64 under
    ``64-true``, float16 under ``16-true``: its precision plugin's ``convert_input``), for the points
    that reach the model outside its loop; None where nothing is converted (``32-true``, the mixed
    precisions), so that those points cost nothing more."""
    plugin = getattr(trainer, "precision_plugin", None)
    if plugin is None or type(plugin).convert_input is Precision.convert_input:
        return None
    return plugin.convert_input


def dataloader(datamodule: pl.LightningDataModule, split: str) -> Iterable | None:
    """The DataModule's dataloader of a split, or None when it has none (Lightning's base class raises
    for a hook left out; an empty list is Lightning's "no such split")."""
    hook: Callable | None = getattr(datamodule, f"{split}_dataloader", None)
    if hook is None or getattr(type(datamodule), f"{split}_dataloader", None) is getattr(
        pl.LightningDataModule, f"{split}_dataloader", None
    ):
        return None
    try:
        loader = hook()
    except Exception as error:  # the user's own hook: said, not raised over the run
        print(f"note: the {split} split is left out: {split}_dataloader() raised {named(error)}", file=sys.stderr)
        return None
    if isinstance(loader, list | tuple) and not loader:
        return None  # Lightning's "no such split"
    several = isinstance(loader, Mapping) or isinstance(loader, list | tuple) and len(loader) > 1
    if several:  # Lightning's several dataloaders: gd_torch's steps and measurements take one
        raise ValueError(
            f"the {split}_dataloader of {type(datamodule).__name__} gives {len(loader)} dataloaders (a"
            f" {type(loader).__name__}, which Lightning reads as several); gd_torch takes one: combine them"
        )
    return loader[0] if isinstance(loader, list | tuple) else loader


def as_trained(datamodule: pl.LightningDataModule, batch: object, device: torch.device) -> object:
    """A dataloader's batch as Lightning hands it to the step: the DataModule's ``on_before_batch_transfer``,
    ``transfer_batch_to_device`` and ``on_after_batch_transfer``, in that order (the module,
    GradientDescent, overrides none of them, so Lightning calls the DataModule's: these same ones)."""
    batch = datamodule.on_before_batch_transfer(batch, 0)
    batch = datamodule.transfer_batch_to_device(batch, device, 0)
    return datamodule.on_after_batch_transfer(batch, 0)


def points_of(loader: Iterable) -> int | None:
    """How many points a pass over a torch DataLoader yields, where known without one: its sampler's
    (a SubsetRandomSampler's indices, not the whole dataset), less what drop_last drops; None for a
    loader of whole batches, a sampler without a length or an iterable dataset."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        return None
    try:
        sampled = len(loader.sampler)
    except TypeError:
        return None
    return sampled - sampled % loader.batch_size if loader.drop_last else sampled


def prepare_once(datamodule: pl.LightningDataModule, trainer: "pl.Trainer") -> None:
    """``datamodule.prepare_data()`` now, where Lightning would call it (local rank 0 of each node, or
    of the first node alone when ``prepare_data_per_node`` is false: a download is made once), and
    Lightning's own call in fit made a no-op: the command sets the DataModule up before the run."""
    local_zero = trainer.local_rank == 0
    if local_zero and (datamodule.prepare_data_per_node or trainer.node_rank == 0):
        datamodule.prepare_data()
    datamodule.prepare_data = lambda: None


def set_up_once(datamodule: pl.LightningDataModule, stage: str) -> None:
    """``datamodule.setup(stage)`` now, and Lightning's own call for the same stage later skipped: the
    command sets a DataModule up to check it before the run begins, and a user's ``setup`` may be costly
    or not idempotent."""
    datamodule.setup(stage)
    original, done = datamodule.setup, stage

    def setup(stage: str) -> None:  # Lightning calls it as setup(stage=...)
        if stage != done:
            original(stage)

    datamodule.setup = setup
