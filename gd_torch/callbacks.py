"""Small, independent Lightning callbacks: the article's table and the run summary.

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
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from gd_torch.curvature import predicted_steps
from gd_torch.data import splits_of
from gd_torch.metrics import split_metrics
from gd_torch.models import in_data_units
from gd_torch.module import full_loss, step_loss
from gd_torch.stopping import Convergence, completed_step, stop_reason


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

    ``final_loss`` is measured at the final parameters over the whole training split (the last logged
    loss is one update older); ``metrics`` (mse, rmse, mae, r2) over every split the data holds. A run
    that failed in the model itself gets neither: measuring would run the failing model again.
    """

    def __init__(self) -> None:
        self._start: float | None = None  # none when a run fails before it starts (a checkpoint that does not fit)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        if trainer.is_global_zero:
            processes = f", {trainer.world_size} processes" if trainer.world_size > 1 else ""
            print(f"Training on {_device_name(pl_module.device)}{processes}", flush=True)
            stability = getattr(pl_module, "stability", None)  # gd_torch.curvature.Stability
            if stability is not None:
                print(stability.line(), flush=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, stop_reason(trainer), measure=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            reason = "interrupted"
        else:
            reason = getattr(exception, "stop_reason", "failed")
        self._write(trainer, pl_module, reason, measure=reason != "failed")

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, reason: str, measure: bool) -> None:
        seconds = time.perf_counter() - self._start if self._start is not None else 0.0
        named = list(pl_module.model.named_parameters())
        summary: dict[str, Any] = {
            "steps": trainer.global_step,
            "params": {name: parameter_value(p) for name, p in named if p.numel() <= SHOWN_IN_FULL},
            "param_norms": {name: finite_or_none(p.norm().item()) for name, p in named if p.numel() > 1},
        }
        raw = in_data_units(pl_module.model, pl_module.x_mean, pl_module.x_std) if _standardized(pl_module) else None
        if raw is not None:
            summary["params_in_data_units"] = {name: parameter_value(value) for name, value in raw.items()}
        measured = measure and trainer.is_global_zero and getattr(trainer.datamodule, "points", None) is not None
        summary["final_loss"] = finite_or_none(full_loss(trainer, pl_module).item()) if measured else None
        if measured and splits_of(trainer.datamodule):
            summary["metrics"] = {
                split: {name: finite_or_none(value) if value is not None else None for name, value in values.items()}
                for split, values in split_metrics(trainer, pl_module).items()
            }
        stability = getattr(pl_module, "stability", None)
        if stability is not None:
            summary["learning_rate"] = stability.learning_rate
            summary["curvature"] = {key: _json_number(value) for key, value in stability.record().items()}
            tolerance = _convergence_tolerance(trainer)
            predicted = predicted_steps(stability.spectrum, stability.learning_rate, stability.optimizer, tolerance)
            if predicted is not None:
                summary["curvature"]["predicted_steps"] = predicted[0]
                summary["curvature"]["predicted_steps_exact"] = predicted[1]
        summary |= {"stop_reason": reason, "device": str(pl_module.device), "seconds": round(seconds, 3)}
        run_dir = Path(trainer.log_dir)  # a broadcast under DDP: every process must ask
        if not trainer.is_global_zero:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        log_artifacts(trainer.loggers, run_dir)
        print(self.format(summary, pl_module, run_dir, view_lines(trainer.loggers)), flush=True)

    @staticmethod
    def format(summary: dict[str, Any], pl_module: pl.LightningModule, run_dir: Path, views: list[str]) -> str:
        lines = [
            f"Done: {summary['steps']} steps ({summary['stop_reason']}) in {summary['seconds']:.2f} s"
            f" on {_device_name(pl_module.device)}",
            *_parameter_lines(summary, pl_module.model),
            _final_loss_line(summary),
            *_prediction_lines(summary),
            *_metric_lines(summary.get("metrics", {})),
            f"  run directory: {run_dir}",
            *views,
        ]
        return "\n".join(lines)


def log_artifacts(loggers: list, run_dir: Path) -> None:
    """The run's files (config.yaml, summary.json, the pictures) to the loggers that store files
    (MLflow's ``log_artifact``); TensorBoard and CSV already write into the run directory. The
    pictures are there: LightningCLI appends the default callbacks (this one) after the config's."""
    files = [path for path in sorted(run_dir.iterdir()) if path.suffix in (".yaml", ".json", ".png")]
    for logger in loggers:
        experiment = getattr(logger, "experiment", None) if hasattr(logger, "run_id") else None
        if experiment is not None and hasattr(experiment, "log_artifact"):
            for path in files:
                experiment.log_artifact(logger.run_id, str(path))


def _final_loss_line(summary: dict[str, Any]) -> str:
    if summary["stop_reason"] == "failed":  # measuring would run the model that just failed
        return "  final loss: not measured (the run failed)"
    return f"  final loss: {_number(summary['final_loss'])} (at the final parameters)"


def view_lines(loggers: list) -> list[str]:
    """Where to look at the run, one line per logger: the command for TensorBoard, the file for CSV,
    the tracking URI and run id for MLflow."""
    lines = []
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            lines.append(f"  view it: tensorboard --logdir {logger.log_dir}")
        elif isinstance(logger, CSVLogger):
            lines.append(f"  metrics: {Path(logger.log_dir) / 'metrics.csv'}")
        elif hasattr(logger, "run_id") and hasattr(logger, "_tracking_uri"):  # MLFlowLogger, without importing mlflow
            lines.append(f"  mlflow: {logger._tracking_uri}, run {logger.run_id}")
        else:
            lines.append(f"  logged with {type(logger).__name__}")
    return lines


def _json_number(value):
    return finite_or_none(value) if isinstance(value, float) else value


def _convergence_tolerance(trainer: pl.Trainer) -> float:
    """The step-size rule's tolerance, if the run has one (0: none)."""
    return next((c.tolerance for c in trainer.callbacks if isinstance(c, Convergence) and c.tolerance), 0.0)


def _prediction_lines(summary: dict[str, Any]) -> list[str]:
    curvature = summary.get("curvature", {})
    if "predicted_steps" not in curvature:
        return []
    steps = curvature["predicted_steps"]
    how = "from the loss Hessian" if curvature["predicted_steps_exact"] else "extrapolated from the slowest direction"
    return [
        f"  steps to the tolerance: {summary['steps']:,} taken, {steps:,} predicted ({how},"
        f" condition number {curvature['condition_number']:.3g})"
    ]


def _standardized(pl_module: pl.LightningModule) -> bool:
    return getattr(pl_module, "x_mean", None) is not None


# A model with more values than this is summed up by tensor: count, shape and norm.
LISTED_TENSORS = 12


def _parameter_lines(summary: dict[str, Any], model: torch.nn.Module) -> list[str]:
    named = list(model.named_parameters())
    learnable = {name for name, p in named if p.requires_grad}
    total = sum(p.numel() for _, p in named)
    if total <= SHOWN_IN_FULL:
        shown = ", ".join(
            f"{name} = {_number(value)} ({'learned' if name in learnable else 'frozen'})"
            for name, value in summary["params"].items()
        )
        lines = [f"  parameters: {shown}"]
        raw = summary.get("params_in_data_units")
        if raw:
            lines.append("  in the data's units: " + ", ".join(f"{name} = {_number(v)}" for name, v in raw.items()))
        return lines
    learned = sum(p.numel() for _, p in named if p.requires_grad)
    lines = [f"  parameters: {total:,} values in {len(named)} tensors ({learned:,} learned)"]
    width = max(len(name) for name, _ in named[:LISTED_TENSORS])
    for name, p in named[:LISTED_TENSORS]:
        shape = "x".join(str(size) for size in p.shape) or "scalar"
        norm = _number(finite_or_none(p.norm().item()))
        lines.append(f"    {name:<{width}}  {shape:>9}  norm {norm}{'' if p.requires_grad else ' (frozen)'}")
    if len(named) > LISTED_TENSORS:
        lines.append(f"    ... and {len(named) - LISTED_TENSORS} more tensors (all in summary.json's param_norms)")
    return lines


def _metric_lines(metrics: dict[str, dict[str, float | None]]) -> list[str]:
    if not metrics:
        return []
    names = list(next(iter(metrics.values())))
    lines = ["  metrics:    " + "".join(f"{name:>13}" for name in names)]
    for split, values in metrics.items():
        cells = "".join(f"{'-' if values[name] is None else _number(values[name]):>13}" for name in names)
        lines.append(f"    {split:<9}" + cells)
    return lines
