"""How many inputs and outputs the data gives a model: its columns, one-hot categories and targets
counted, for the model's ``features`` and ``outputs`` (linked by LightningCLI's ``link_arguments(...,
apply_on="instantiate")`` in gd_torch.cli), so that a user never counts them.

A ``PointData`` knows its columns when it is built; a DataModule of one's own tells by its first
training batch once it is set up, with its trainer (gd_torch.cli).
"""

import lightning.pytorch as pl
import torch

from gd_torch.randomness import measured
from gd_torch.schema import Schema
from gd_torch.splits import as_trained, batch_in_words, dataloader, is_batch

Batch = tuple[torch.Tensor, torch.Tensor]


def known_schema(data: pl.LightningDataModule) -> Schema | None:
    """The names of the model's inputs and outputs a PointData knows when it is built; None for a
    DataModule of one's own (learned from its first batch once it is set up: :func:`schema_of_batch`)
    or a PointData subclass that knows them only on its device."""
    return data.known_schema() if hasattr(data, "known_schema") else None


def schema_of_batch(x: torch.Tensor, y: torch.Tensor) -> Schema:
    """The inputs and outputs a batch of points gives a model, named ``x1, x2, ...`` and ``y1, ...``."""
    features = 1 if x.dim() == 1 else x[0].numel()  # an image's (C, H, W): its C * H * W values
    targets = 1 if y.dim() == 1 else y.shape[1]
    x_names = ["x"] if features == 1 else [f"x{i}" for i in range(1, features + 1)]
    return Schema(x_names, ["y"] if targets == 1 else [f"y{i}" for i in range(1, targets + 1)])


def first_batch(data: pl.LightningDataModule, device: torch.device) -> Batch:
    """The first ``(x, y)`` batch of a DataModule's training dataloader (set up already), as training gets
    it (the DataModule's batch hooks, on ``device``), or a ValueError that says what it lacks."""
    loader = dataloader(data, "train")
    if loader is None:
        raise ValueError(f"{type(data).__name__} has no train_dataloader(); gd_torch trains on the batches it gives")
    batch = next(measured(loader), None)
    batch = as_trained(data, batch, device) if batch is not None else None
    if not is_batch(batch):
        raise ValueError(
            f"the train_dataloader of {type(data).__name__} yields {batch_in_words(batch)}; it must yield (x, y)"
        )
    return batch[0], batch[1]


def count(schema: Schema, key: str) -> int:
    """``features`` (the model's input columns) or ``outputs`` (its targets, a class's one-hot columns)."""
    return len(schema.feature_names if key == "features" else schema.target_names)


def disagreement(key: str, given: int, schema: Schema) -> str:
    names = schema.feature_names if key == "features" else schema.target_names
    what = "features" if key == "features" else "targets"
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return f"{key} is {given}, but the data has {len(names)} {what} ({shown}); leave it out to take the data's"
