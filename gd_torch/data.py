"""Where the points come from. Every DataModule here hands out batches that already sit on the
training device, and exposes all its points as ``points`` for whole-data measurements."""

import math

import lightning.pytorch as pl
import torch


class Points(pl.LightningDataModule):
    """Points given inline in the config, trained on full batch: every step sees all of them.

    The tensors move to the training device once, in ``setup``; each step then gets the very same
    tensors, so there is no per-step copy and no per-sample collation (a DataLoader would do both).
    """

    def __init__(self, x: list[float], y: list[float]) -> None:
        super().__init__()
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} points but y has {len(y)}; they must have the same length")
        if not x:
            raise ValueError("x and y hold no points; at least one is needed")
        for name, values in (("x", x), ("y", y)):
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            if bad is not None:
                raise ValueError(f"{name}[{bad}] must be a finite number, got {values[bad]}")
        self.x = torch.tensor(x, dtype=torch.float32)
        self.y = torch.tensor(y, dtype=torch.float32)

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device if self.trainer else self.x.device
        self.x, self.y = self.x.to(device), self.y.to(device)

    @property
    def points(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y

    def train_dataloader(self) -> "FullBatch":
        return FullBatch(self.x, self.y)


class FullBatch:
    """An epoch of one batch holding every point: one step per epoch, the same tensors each time.

    A class rather than a list: Lightning reads a list as several dataloaders.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.batch = (x, y)

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield self.batch
