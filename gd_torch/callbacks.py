"""Small, independent Lightning callbacks: TensorBoard scalars, the article's table, the run summary.

Each one reads what it needs from the trainer and the module; none depends on another or on the
order callbacks run in. All of them run after the optimizer step of a batch, so "step k" below is
the k-th update (k = 0, 1, ...), the loss is the one computed *before* it and the parameters are
the ones *after* it, exactly as in the article's table.
"""

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary

from gd_torch.module import step_loss
from gd_torch.stopping import stop_reason


def scalar_parameters(module: torch.nn.Module, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """The model's one-element parameters by name (``intercept``, ``slope``, ...)."""
    return {
        name: p for name, p in module.named_parameters() if p.numel() == 1 and (p.requires_grad or not trainable_only)
    }


def completed_step(trainer: pl.Trainer) -> int:
    """Index k of the optimizer update that just ran (``global_step`` counts them from 1)."""
    return trainer.global_step - 1


class TensorBoardScalars(pl.Callback):
    """Writes to TensorBoard at every optimizer step k: ``train/loss``; ``params/<name>`` for each
    scalar parameter; ``params/<name>/norm`` for each tensor parameter; and every ``histogram_every``
    steps (0 = never) a histogram ``params/<name>`` of each tensor parameter.

    The values stay on the device and are written every ``flush_every`` steps (and at the end), so
    logging forces no per-step device sync, yet TensorBoard gets one point for every step. Lightning's
    ``self.log`` would cost several times a plain loop here and drops steps between
    ``log_every_n_steps``.
    """

    def __init__(self, flush_every: int = 100, histogram_every: int = 0) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        if histogram_every < 0:
            raise ValueError(f"histogram_every must be >= 0 (0 = never), got {histogram_every}")
        self.flush_every = flush_every
        self.histogram_every = histogram_every
        self._pending: list[tuple[int, float, torch.Tensor]] = []  # (step, wall time, values)
        self._last_step = -1

    def _writer(self, trainer: pl.Trainer):
        return next((lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        named = list(pl_module.model.named_parameters())
        # Detached views follow the optimizer's in-place updates: made once, read every step.
        self._scalars = [p.detach().reshape(()) for _, p in named if p.numel() == 1]
        self._tensors = [(name, p.detach()) for name, p in named if p.numel() > 1]
        self._tags = [
            "train/loss",
            *(f"params/{name}" for name, p in named if p.numel() == 1),
            *(f"params/{name}/norm" for name, _ in self._tensors),
        ]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = completed_step(trainer)
        if step == self._last_step:  # no update on this batch (gradient accumulation)
            return
        self._last_step = step
        values = [step_loss(outputs), *self._scalars, *(torch.linalg.vector_norm(p) for _, p in self._tensors)]
        self._pending.append((step, time.time(), torch.stack([v.float() for v in values])))
        if len(self._pending) >= self.flush_every:
            self._flush(trainer)
        if self.histogram_every and step % self.histogram_every == 0 and trainer.is_global_zero:
            writer = self._writer(trainer)
            for name, p in self._tensors if writer else ():
                writer.add_histogram(f"params/{name}", p, step)

    def _flush(self, trainer: pl.Trainer) -> None:
        writer = self._writer(trainer)
        if not self._pending or writer is None or not trainer.is_global_zero:
            self._pending.clear()
            return
        rows = torch.stack([values for _, _, values in self._pending]).tolist()  # one device sync
        # One event per step holding every tag: a third of the events (and of the writer's
        # queue traffic) that one add_scalar per tag would make, read back the same by TensorBoard.
        file_writer = writer._get_file_writer()
        for (step, wall_time, _), row in zip(self._pending, rows, strict=True):
            values = [Summary.Value(tag=tag, simple_value=v) for tag, v in zip(self._tags, row, strict=True)]
            file_writer.add_summary(Summary(value=values), step, wall_time)
        self._pending.clear()
        writer.flush()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._flush(trainer)  # keep the steps that did run


class ArticleTable(pl.Callback):
    """Prints one row per step in the article's format: ``Step  0 | b = 9.1000 | loss = 405.00``.

    Shows every learnable scalar parameter, named by ``symbols`` (the article calls the intercept
    ``b`` and the slope ``m``); other parameters keep their own names.
    """

    def __init__(self, symbols: dict[str, str] | None = None) -> None:
        self.symbols = {"slope": "m", "intercept": "b"} if symbols is None else symbols

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        params = scalar_parameters(pl_module.model, trainable_only=True)
        columns = [f"{self.symbols.get(name, name)} = {p.item():.4f}" for name, p in params.items()]
        loss = step_loss(outputs).item()
        print(" | ".join([f"Step {completed_step(trainer):2d}", *columns, f"loss = {loss:.2f}"]), flush=True)


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN or infinity: a value that blew up is written as null."""
    return value if math.isfinite(value) else None


# Tensor parameters up to this size (a linear model's weights) are reported value by value.
SHOWN_IN_FULL = 16


def parameter_value(p: torch.Tensor) -> float | None | list:
    if p.numel() == 1:
        return finite_or_none(p.item())
    return [parameter_value(row) for row in p.detach()]


def _number(value: float | None | list) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return "not finite" if value is None else f"{value:.6g}"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


class RunSummary(pl.Callback):
    """Says where training runs, then sums the run up on the console and in ``summary.json``.

    ``final_loss`` is measured at the final parameters over all points (the last logged loss is
    one update older). The DataModule provides them as ``points``.
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        if trainer.is_global_zero:
            processes = f", {trainer.world_size} processes" if trainer.world_size > 1 else ""
            print(f"Training on {_device_name(pl_module.device)}{processes}", flush=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, stop_reason(trainer))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            reason = "interrupted"
        else:
            reason = getattr(exception, "stop_reason", "failed")
        self._write(trainer, pl_module, reason)

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, reason: str) -> None:
        seconds = time.perf_counter() - self._start
        with torch.no_grad():
            final_loss = pl_module.loss(*trainer.datamodule.points).item()
        named = list(pl_module.model.named_parameters())
        summary: dict[str, Any] = {
            "steps": trainer.global_step,
            "params": {name: parameter_value(p) for name, p in named if p.numel() <= SHOWN_IN_FULL},
            "param_norms": {name: finite_or_none(p.norm().item()) for name, p in named if p.numel() > 1},
            "final_loss": finite_or_none(final_loss),
            "stop_reason": reason,
            "device": str(pl_module.device),
            "seconds": round(seconds, 3),
        }
        run_dir = Path(trainer.log_dir)  # a broadcast under DDP: every process must ask
        if not trainer.is_global_zero:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(self.format(summary, pl_module, run_dir), flush=True)

    @staticmethod
    def format(summary: dict[str, Any], pl_module: pl.LightningModule, run_dir: Path) -> str:
        learnable = {name for name, p in pl_module.model.named_parameters() if p.requires_grad}
        params = ", ".join(
            f"{name} = {_number(value)} ({'learned' if name in learnable else 'frozen'})"
            for name, value in summary["params"].items()
        )
        return "\n".join(
            [
                f"Done: {summary['steps']} steps ({summary['stop_reason']}) in {summary['seconds']:.2f} s"
                f" on {_device_name(pl_module.device)}",
                f"  parameters: {params}",
                f"  final loss: {_number(summary['final_loss'])} (at the final parameters)",
                f"  run directory: {run_dir}",
                f"  view it: tensorboard --logdir {run_dir}",
            ]
        )
