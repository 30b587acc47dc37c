"""The run summed up at its end, on the console and in ``summary.json``: where it trained, how it
ended (:mod:`gd_torch.outcome`), its parameters, final loss, metrics and curvature, and where to look
at it (one line per logger)."""

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from gd_torch.adapters.loggers import is_mlflow, tracking_uri
from gd_torch.files import write_atomically
from gd_torch.history import InMemoryLogger
from gd_torch.models import in_data_units
from gd_torch.outcome import Outcome, nothing_trained, outcome_of
from gd_torch.rundir import run_directory
from gd_torch.stability import predicted_steps
from gd_torch.stopping import Convergence


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
    that ended on an exception gets neither: measuring would run a model that may have just failed.
    The summary stays in memory too (``summary``), for ``gd_torch.fit``.
    """

    def __init__(self) -> None:
        self._start: float | None = None  # none when a run fails before it starts (a checkpoint that does not fit)
        self.summary: dict[str, Any] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        if trainer.is_global_zero:
            processes = f", {trainer.world_size} processes" if trainer.world_size > 1 else ""
            print(f"Training on {_device_name(pl_module.device)}{processes}", flush=True)
            stability = getattr(pl_module, "stability", None)  # gd_torch.stability.Stability
            if stability is not None:
                print(stability.line(), flush=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, outcome_of(trainer, pl_module))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if nothing_trained(exception):
            return  # the command takes the run directory back
        self._write(trainer, pl_module, outcome_of(trainer, pl_module, exception))

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outcome: Outcome) -> None:
        seconds = time.perf_counter() - self._start if self._start is not None else 0.0
        named = list(pl_module.model.named_parameters())
        summary: dict[str, Any] = {
            "steps": outcome.steps,
            "params": {name: parameter_value(p) for name, p in named if p.numel() <= SHOWN_IN_FULL},
            "param_norms": {name: finite_or_none(p.norm().item()) for name, p in named if p.numel() > 1},
        }
        raw = in_data_units(pl_module.model, pl_module.x_mean, pl_module.x_std) if _standardized(pl_module) else None
        if raw is not None:
            summary["params_in_data_units"] = {name: parameter_value(value) for name, value in raw.items()}
        summary["final_loss"] = outcome.final_loss
        if outcome.metrics:
            summary["metrics"] = {
                split: {name: finite_or_none(value) if value is not None else None for name, value in values.items()}
                for split, values in outcome.metrics.items()
            }
        stability = getattr(pl_module, "stability", None)
        if stability is not None:
            summary["learning_rate"] = stability.learning_rate
            summary["curvature"] = {key: _json_number(value) for key, value in stability.record().items()}
            tolerance = _convergence_tolerance(trainer)
            predicted = (
                predicted_steps(stability.spectrum, stability.learning_rate, stability.optimizer, tolerance)
                if stability.predicts_the_run
                else None  # mini-batches, or a subset: the path is not the Hessian's
            )
            if predicted is not None:
                summary["curvature"]["predicted_steps"] = predicted[0]
                summary["curvature"]["predicted_steps_exact"] = predicted[1]
        summary |= {"stop_reason": outcome.reason, "device": str(pl_module.device), "seconds": round(seconds, 3)}
        run_dir = run_directory(trainer)  # found at the set-up, on every process
        if not trainer.is_global_zero:
            return
        self.summary = summary
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        log_artifacts(trainer.loggers, run_dir)
        print(self.format(summary, pl_module, run_dir, view_lines(trainer.loggers), outcome.measured), flush=True)

    @staticmethod
    def format(
        summary: dict[str, Any], pl_module: pl.LightningModule, run_dir: Path, views: list[str], measured: bool = True
    ) -> str:
        lines = [
            f"Done: {summary['steps']} steps ({summary['stop_reason']}) in {summary['seconds']:.2f} s"
            f" on {_device_name(pl_module.device)}",
            *_parameter_lines(summary, pl_module.model),
            _final_loss_line(summary, measured),
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
        experiment = logger.experiment if is_mlflow(logger) else None
        if experiment is not None and hasattr(experiment, "log_artifact"):
            for path in files:
                experiment.log_artifact(logger.run_id, str(path))


def _final_loss_line(summary: dict[str, Any], measured: bool) -> str:
    if not measured:  # measuring would run a model that may have just failed
        why = "the run failed" if summary["stop_reason"] == "failed" else "the run ended on an exception"
        return f"  final loss: not measured ({why})"
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
        elif is_mlflow(logger):
            lines.append(f"  mlflow: {tracking_uri(logger)}, run {logger.run_id}")
        elif isinstance(logger, InMemoryLogger):
            continue
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
    kappa = curvature["condition_number"]  # null in JSON: infinite, a singular Hessian
    return [
        f"  steps to the tolerance: {summary['steps']:,} taken, {steps:,} predicted ({how},"
        f" condition number {'inf' if kappa is None else format(kappa, '.3g')})"
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
    names = [name for name in next(iter(metrics.values())) if "/" not in name]  # averages; per target in the JSON
    lines = ["  metrics:    " + "".join(f"{name:>13}" for name in names)]
    for split, values in metrics.items():
        cells = "".join(f"{'-' if values[name] is None else _number(values[name]):>13}" for name in names)
        lines.append(f"    {split:<9}" + cells)
    return lines
