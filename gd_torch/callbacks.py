"""The article's table on the console, one row per step.

It runs after the optimizer step of a batch, so "step k" is the k-th update (k = 0, 1, ...), the loss
is the one computed *before* it and the parameters are the ones *after* it, exactly as in the
article's table. (The run's summary is :mod:`gd_torch.summary`'s; ``RunSummary`` is importable from
here too.)
"""

import lightning.pytorch as pl
import torch

from gd_torch.module import step_loss
from gd_torch.stopping import completed_step
from gd_torch.summary import RunSummary

__all__ = ["ArticleTable", "RunSummary", "scalar_parameters", "table_stride"]


def scalar_parameters(module: torch.nn.Module, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """The model's one-element parameters by name (``intercept``, ``slope``, ...)."""
    return {
        name: p for name, p in module.named_parameters() if p.numel() == 1 and (p.requires_grad or not trainable_only)
    }


def table_stride(step: int) -> int:
    """Which steps a long run's table shows: every one of the first 100, then every 20th up to 1,000,
    every 200th up to 10,000, and so on: about 45 rows per decade, 250 rows for 60,000 steps."""
    return 1 if step < 100 else 2 * 10 ** (len(str(step)) - 2)


class ArticleTable(pl.Callback):
    """Prints one row per step in the article's format: ``Step  0 | b = 9.1000 | loss = 405.00``.

    Shows every learnable scalar parameter, named by ``symbols`` (the article calls the intercept
    ``b`` and the slope ``m``); other parameters keep their own names. A long run's table thins out
    after step 100 (see :func:`table_stride`), says so when it does, and always ends with the last step.

    Args:
        symbols: The column name of each parameter (default: slope m, intercept b).
    """

    def __init__(self, symbols: dict[str, str] | None = None) -> None:
        self.symbols = {"slope": "m", "intercept": "b"} if symbols is None else symbols
        self._stride = 1
        self._last: tuple[int, list, torch.Tensor] | None = None  # the newest row not printed yet

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        step = completed_step(trainer)
        params = scalar_parameters(pl_module.model, trainable_only=True)
        stride = table_stride(step)
        if step % stride:
            # Kept on the device, read only if it turns out to be the last step.
            self._last = (step, [(name, p.detach().clone()) for name, p in params.items()], step_loss(outputs))
            return
        if stride != self._stride:
            self._stride = stride
            print(f"(from step {step:,} on, every {stride:,}th step; the last one always)", flush=True)
        self._print(step, list(params.items()), step_loss(outputs))
        self._last = None

    def on_train_end(self, trainer, pl_module) -> None:
        if self._last is not None and trainer.is_global_zero:
            self._print(*self._last)
            self._last = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)  # a run that ends early still shows where it got to

    def _print(self, step: int, params: list, loss: torch.Tensor) -> None:
        columns = [f"{self.symbols.get(name, name)} = {p.item():.4f}" for name, p in params]
        print(" | ".join([f"Step {step:2d}", *columns, f"loss = {loss.item():.2f}"]), flush=True)
