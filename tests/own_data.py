"""LightningDataModules as a Lightning user writes them (DataLoaders over TensorDatasets), for the tests
that train on a DataModule of one's own."""

import os

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, SubsetRandomSampler, TensorDataset

WEIGHT, BIAS = (1.5, -2.0, 0.5), 0.25


def points(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x @ WEIGHT + BIAS + noise, float32."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    y = x @ torch.tensor(WEIGHT) + BIAS + 0.1 * torch.randn(n, generator=generator)
    return x, y


class TensorData(pl.LightningDataModule):
    """``n`` training points and ``val`` validation points in DataLoaders.

    Args:
        n: Training points.
        val: Validation points (0: no val_dataloader worth the name, an empty list).
        batch_size: None: every training point in one batch.
        shuffle: Shuffle the training batches.
    """

    def __init__(self, n: int = 300, val: int = 100, batch_size: int | None = None, shuffle: bool = False) -> None:
        super().__init__()
        self.n, self.val, self.batch_size, self.shuffle = n, val, batch_size, shuffle
        self.setups = 0

    def setup(self, stage: str) -> None:
        self.setups += 1
        self.train_set = TensorDataset(*points(self.n, seed=1))
        self.val_set = TensorDataset(*points(self.val, seed=2)) if self.val else None

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size or self.n, shuffle=self.shuffle)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=64) if self.val_set is not None else []


class NoTraining(pl.LightningDataModule):
    """A DataModule with no train_dataloader."""


class Dicts(TensorData):
    """Batches as dicts, not (x, y)."""

    def train_dataloader(self):
        return DataLoader([{"x": x, "y": y} for x, y in self.train_set], batch_size=10)


class Weighted(TensorData):
    """Batches of (x, y, weight): a third item gd_torch would leave unused."""

    def train_dataloader(self):
        x, y = self.train_set.tensors
        return DataLoader(TensorDataset(x, y, torch.ones_like(y)), batch_size=self.n)


class Counts(TensorData):
    """Integer features, as a table of counts gives them."""

    def train_dataloader(self):
        x, y = self.train_set.tensors
        return DataLoader(TensorDataset(x.round().long(), y), batch_size=self.n)


class Doubles(TensorData):
    """float64 features, as NumPy makes them."""

    def train_dataloader(self):
        x, y = self.train_set.tensors
        return DataLoader(TensorDataset(x.double(), y.double()), batch_size=self.n)


class Chunks(torch.utils.data.IterableDataset):
    """Ten seeded batches of 32 points, yielded whole (a stream: no length)."""

    def __iter__(self):
        generator = torch.Generator().manual_seed(0)
        for _ in range(10):
            x = torch.randn(32, 3, generator=generator)
            yield x, x @ torch.tensor(WEIGHT) + BIAS + 0.1 * torch.randn(32, generator=generator)


class Streaming(pl.LightningDataModule):
    """A DataModule over an IterableDataset that yields whole batches (batch_size=None)."""

    def train_dataloader(self):
        return DataLoader(Chunks(), batch_size=None)


class TwoLoaders(TensorData):
    """Two training dataloaders in a list: Lightning's several dataloaders."""

    def train_dataloader(self):
        return [super().train_dataloader(), super().train_dataloader()]


class ColumnTargets(TensorData):
    """Targets of shape (N, 1), as ``y.unsqueeze(1)`` makes them."""

    def train_dataloader(self):
        x, y = self.train_set.tensors
        return DataLoader(TensorDataset(x, y.unsqueeze(1)), batch_size=self.n)


class Images(TensorData):
    """Points of shape (1, 4, 4), as an image DataModule gives them: y linear in the 16 pixels."""

    def setup(self, stage: str) -> None:
        generator = torch.Generator().manual_seed(3)
        x = torch.randn(self.n, 1, 4, 4, generator=generator)
        pixels = torch.linspace(-1.0, 1.0, 16)
        y = x.flatten(1) @ pixels + BIAS + 0.1 * torch.randn(self.n, generator=generator)
        self.train_set, self.val_set = TensorDataset(x, y), None


class SamplerSplit(pl.LightningDataModule):
    """One dataset of 400 points split into 300 training and 100 validation points by SubsetRandomSampler,
    as Lightning's and PyTorch's tutorials split one; full batch, in a shuffled order."""

    def setup(self, stage: str) -> None:
        self.dataset = TensorDataset(*points(400, seed=4))
        order = torch.randperm(400, generator=torch.Generator().manual_seed(5)).tolist()
        self.train_points, self.val_points = order[:300], order[300:]

    def train_dataloader(self):
        return DataLoader(self.dataset, batch_size=300, sampler=SubsetRandomSampler(self.train_points))

    def val_dataloader(self):
        return DataLoader(self.dataset, batch_size=64, sampler=SubsetRandomSampler(self.val_points))


SCALE = 0.1  # what Hooked's on_after_batch_transfer multiplies the targets by


class Scaled(TensorData):
    """(x, y) batches whose targets on_after_batch_transfer scales, as a DataModule normalizes on the device."""

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return x, y * SCALE


class Hooked(TensorData):
    """Lightning's batch hooks at work: batches are dicts, made (x, y) by on_before_batch_transfer, moved
    by a transfer_batch_to_device of its own (counted), their targets scaled by on_after_batch_transfer."""

    transfers = 0

    def train_dataloader(self):
        return DataLoader([{"x": x, "y": y} for x, y in self.train_set], batch_size=self.n)

    def val_dataloader(self):
        return DataLoader([{"x": x, "y": y} for x, y in self.val_set], batch_size=64)

    def on_before_batch_transfer(self, batch, dataloader_idx):
        return batch["x"], batch["y"]

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        self.transfers += 1
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return x, y * SCALE


class Downloading(TensorData):
    """Written as a DataModule that downloads is: ``prepare_data`` (counted, and each call's process id
    appended to the file ``OWN_DATA_PREPARED`` names), and a ``setup`` that reads its trainer."""

    prepared = 0

    def prepare_data(self) -> None:
        self.prepared += 1
        if os.environ.get("OWN_DATA_PREPARED"):
            with open(os.environ["OWN_DATA_PREPARED"], "a") as log:
                log.write(f"{os.getpid()}\n")

    def setup(self, stage: str) -> None:
        self.seen = (self.trainer.world_size, self.trainer.global_rank)  # fails without a trainer
        super().setup(stage)
