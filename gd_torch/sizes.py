"""How many inputs and outputs the data gives a model: its columns, one-hot categories and targets
counted, for the model's ``features`` and ``outputs`` (linked by LightningCLI's ``link_arguments(...,
apply_on="instantiate")`` in gd_torch.cli), so that a user never counts them.

A ``PointData`` knows its columns when it is built; a DataModule of one's own is set up once (the
command's check of it, which Lightning's own setup then skips) and its first training batch tells.
"""

import weakref

import lightning.pytorch as pl
import torch

from gd_torch.schema import Schema
from gd_torch.splits import batch_in_words, dataloader, is_batch, set_up_once

Batch = tuple[torch.Tensor, torch.Tensor]
_FIRST: "weakref.WeakKeyDictionary[pl.LightningDataModule, Batch]" = weakref.WeakKeyDictionary()


def schema_of(data: pl.LightningDataModule) -> Schema | None:
    """The names of the model's inputs and outputs the data has; None where they are not known before
    the data is set up on its device (a PointData subclass of one's own)."""
    if hasattr(data, "known_schema"):  # a PointData
        return data.known_schema()
    x, y = first_batch(data)
    features = 1 if x.dim() == 1 else x[0].numel()  # an image's (C, H, W): its C * H * W values
    targets = 1 if y.dim() == 1 else y.shape[1]
    x_names = ["x"] if features == 1 else [f"x{i}" for i in range(1, features + 1)]
    return Schema(x_names, ["y"] if targets == 1 else [f"y{i}" for i in range(1, targets + 1)])


def first_batch(data: pl.LightningDataModule) -> Batch:
    """The first ``(x, y)`` batch of a DataModule's training dataloader (the DataModule set up for fit
    once), or a ValueError that says what it lacks."""
    if data in _FIRST:
        return _FIRST[data]
    data.prepare_data()
    set_up_once(data, "fit")
    loader = dataloader(data, "train")
    if loader is None:
        raise ValueError(f"{type(data).__name__} has no train_dataloader(); gd_torch trains on the batches it gives")
    batch = next(iter(loader), None)
    if not is_batch(batch):
        raise ValueError(
            f"the train_dataloader of {type(data).__name__} yields {batch_in_words(batch)}; it must yield (x, y)"
        )
    _FIRST[data] = (batch[0], batch[1])
    return _FIRST[data]


def count(schema: Schema, key: str) -> int:
    """``features`` (the model's input columns) or ``outputs`` (its targets, a class's one-hot columns)."""
    return len(schema.feature_names if key == "features" else schema.target_names)


def disagreement(key: str, given: int, schema: Schema) -> str:
    names = schema.feature_names if key == "features" else schema.target_names
    what = "features" if key == "features" else "targets"
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return f"{key} is {given}, but the data has {len(names)} {what} ({shown}); leave it out to take the data's"
