"""What TensorBoard shows of a run: one point per step for every signal of the descent, a custom
"Gradient descent" layout, the run's hyperparameters with its results, and (written by the CLI)
the resolved config as text.

Per step k (the k-th update; the loss is the one before it, everything else after it):

    train/loss               the loss at the parameters before update k
    params/<name>            each scalar parameter after update k (tensor ones: params/<name>/norm)
    grads/<name>             the gradient update k used (tensor parameters: grads/<name>/norm)
    train/step_size          the largest change of any learnable parameter in update k
    train/learning_rate      the optimizer's learning rate
    optimum/<name>           where a Line's parameter converges (least squares), when it is known

Every ``sharpness_every`` steps (0 = never, the default), after update k, from
:class:`gd_torch.sharpness.Sharpness`:

    train/sharpness          the loss Hessian's largest eigenvalue at the current parameters
    train/stability_limit    the largest sharpness at which the optimizer is stable at its learning
                             rate (2 / lr for plain SGD); only for SGD, whose bound is known

Every ``trainer.val_check_interval`` steps, when the data holds out a validation split, the module logs
``val/loss`` (at the parameters after that many updates, as ``train/loss`` of the next step). At the
end, ``metrics/<split>/<name>`` (mse, rmse, mae, r2 of each split) and the HParams tab.

Every value goes to every logger (:mod:`gd_torch.fanout`); the layout, the histograms and the HParams
tab are TensorBoard's alone.
"""

import sys
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from gd_torch.adapters.tensorboard import add_layout
from gd_torch.data import PointData
from gd_torch.fanout import log_rows, loggers_of
from gd_torch.module import GradientDescent, step_loss
from gd_torch.optimum import NoOptimum, least_squares
from gd_torch.outcome import Outcome, nothing_trained, outcome_of
from gd_torch.sharpness import Sharpness
from gd_torch.splits import splits_of
from gd_torch.stopping import completed_step, largest_change


class Dashboard(pl.Callback):
    """What TensorBoard shows of the run: every tag at every step, val/loss, layout and hparams.

    The other loggers (CSV, MLflow) get the same values at the same steps; the Custom Scalars layout,
    the histograms and the HParams tab are TensorBoard's alone.

    The tags are in this module's docstring. Every ``histogram_every`` steps it also writes a
    histogram ``params/<name>`` of each tensor parameter to TensorBoard. ``sharpness_every`` measures
    the sharpness through a :class:`gd_torch.sharpness.Sharpness` of its own (unless the trainer's
    callbacks list one already), and the layout charts it beside the stability limit.

    The per-step values stay on the device and are written every ``flush_every`` steps (and at the
    end and with each checkpoint), one event per step holding every tag, so logging forces no per-step
    device sync, yet TensorBoard gets one point for every step. Lightning's ``self.log`` would cost
    several times a plain loop here and drops steps between ``log_every_n_steps``.

    Args:
        flush_every: Write the kept values every this many steps (and at the end), >= 1.
        histogram_every: A histogram of each tensor parameter every this many steps; 0 = never.
        sharpness_every: The loss Hessian's largest eigenvalue every this many steps; 0 = never.
    """

    def __init__(self, flush_every: int = 100, histogram_every: int = 0, sharpness_every: int = 0) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        if histogram_every < 0:
            raise ValueError(f"histogram_every must be >= 0 (0 = never), got {histogram_every}")
        if sharpness_every < 0:
            raise ValueError(f"sharpness_every must be >= 0 (0 = never), got {sharpness_every}")
        self.flush_every = flush_every
        self.histogram_every = histogram_every
        self.sharpness_every = sharpness_every
        self._sharpness = Sharpness(sharpness_every) if sharpness_every else None
        self._pending: list[tuple[int, float, torch.Tensor, float]] = []  # step, wall time, values, lr
        self._val: list[tuple[int, float, torch.Tensor]] = []  # val/loss: step, wall time, value
        # Set when training starts; a run that fails before (a checkpoint that does not fit) has none.
        self._initial: dict[str, float] = {}
        self._optimum: dict[str, float] = {}
        self._last_step = -1

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The starting point, before any update (a resumed run starts from its checkpoint instead).
        self._initial = {name: p.item() for name, p in pl_module.model.named_parameters() if p.numel() == 1}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        named = list(pl_module.model.named_parameters())
        learnable = [(name, p) for name, p in named if p.requires_grad]
        # Detached views follow the optimizer's in-place updates: made once, read every step.
        self._scalars = [p.detach().reshape(()) for _, p in named if p.numel() == 1]
        self._tensors = [(name, p.detach()) for name, p in named if p.numel() > 1]
        self._learnable = [p for _, p in learnable]
        self._tags = [
            "train/loss",
            *(f"params/{name}" for name, p in named if p.numel() == 1),
            *(f"params/{name}/norm" for name, _ in self._tensors),
            *(f"grads/{name}" if p.numel() == 1 else f"grads/{name}/norm" for name, p in learnable),
            "train/step_size",
            "train/learning_rate",
        ]
        splits = splits_of(trainer.datamodule, pl_module.device)
        if isinstance(pl_module, GradientDescent) and "train" in splits:
            try:
                self._optimum = least_squares(pl_module.model, splits["train"].chunks()) or {}
            except NoOptimum as reason:  # trained all the same; nothing to draw the path towards
                if trainer.is_global_zero:
                    print(f"note: no optimum/* lines: {reason}", file=sys.stderr, flush=True)
        listed = any(isinstance(callback, Sharpness) for callback in trainer.callbacks)
        # A Sharpness in the trainer's callbacks measures it already: measuring twice would cost twice.
        self._measuring = None if listed else self._sharpness
        layout = self._layout(named, "val" in splits, listed or self._sharpness is not None)
        for writer in self._tensorboard_writers(trainer):
            add_layout(writer, layout)
        self._log_optimum(trainer, trainer.global_step)

    @staticmethod
    def _tensorboard_writers(trainer: pl.Trainer) -> list:
        return [lg.experiment for lg in loggers_of(trainer) if isinstance(lg, TensorBoardLogger)]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._before = [p.detach().clone() for p in self._learnable]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = completed_step(trainer)
        if step == self._last_step:  # no update on this batch (gradient accumulation)
            return
        self._last_step = step
        loss = step_loss(outputs)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in self._learnable]
        values = [
            loss,
            *self._scalars,
            *(torch.linalg.vector_norm(p) for _, p in self._tensors),
            *(g.reshape(()) if g.numel() == 1 else torch.linalg.vector_norm(g) for g in grads),
            largest_change(self._learnable, self._before) if self._learnable else loss.new_zeros(()),
        ]
        learning_rate = trainer.optimizers[0].param_groups[0]["lr"]
        self._pending.append((step, time.time(), torch.stack([v.float() for v in values]), learning_rate))
        if len(self._pending) >= self.flush_every:
            self._flush(trainer)
        if self._measuring is not None:
            self._measuring.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.histogram_every and step % self.histogram_every == 0:
            for writer in self._tensorboard_writers(trainer):
                for name, p in self._tensors:
                    # TensorBoard's histogram buckets span +-1e12: a blown-up tensor has no histogram (its
                    # params/<name>/norm shows it).
                    if bool((p.abs() < 1e12).all()):
                        writer.add_histogram(f"params/{name}", p, step)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        """A checkpoint and the logs up to it land together: what a resumed run continues from is in
        TensorBoard too, even if the process is killed right after."""
        self._flush(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``val/loss`` at step k = the number of updates so far: the same parameters as ``train/loss``
        at step k, so the two curves on one chart compare like with like."""
        value = trainer.callback_metrics.get("val/loss")
        if value is not None and not trainer.sanity_checking:
            self._val.append((trainer.global_step, time.time(), value.detach().clone()))

    def _flush(self, trainer: pl.Trainer) -> None:
        """The kept values to every logger; on the other processes of a DDP run they are dropped."""
        loggers = loggers_of(trainer)
        pending, val = self._pending, self._val
        self._pending, self._val = [], []
        if not loggers:
            return
        rows = [(step, wall_time, {"val/loss": float(value)}) for step, wall_time, value in val]
        if pending:
            values = torch.stack([values for _, _, values, _ in pending]).tolist()  # one device sync
            for (step, wall_time, _, learning_rate), row in zip(pending, values, strict=True):
                rows.append((step, wall_time, dict(zip(self._tags, [*row, learning_rate], strict=True))))
        log_rows(loggers, rows)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._flush(trainer)
        self._finish(trainer, pl_module, outcome_of(trainer, pl_module))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if nothing_trained(exception):
            return  # the command takes the run directory back
        self._flush(trainer)  # keep the steps that did run; the model is not run again
        self._finish(trainer, pl_module, outcome_of(trainer, pl_module, exception))

    def _log_optimum(self, trainer: pl.Trainer, step: int) -> None:
        if self._optimum:
            log_rows(loggers_of(trainer), [(step, time.time(), {f"optimum/{n}": v for n, v in self._optimum.items()})])

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outcome: Outcome) -> None:
        """The optimum line's second point, and the run's hyperparameters with its results."""
        loggers = loggers_of(trainer)
        if not loggers:
            return
        last = max(completed_step(trainer), 0)
        self._log_optimum(trainer, last)
        results = {"hparams/steps": trainer.global_step}
        if outcome.final_loss is not None:
            results["hparams/final_loss"] = outcome.final_loss
        for split, values in outcome.metrics.items():
            results |= {f"metrics/{split}/{name}": value for name, value in values.items() if value is not None}
        hyperparameters = self._hyperparameters(trainer, pl_module, outcome.reason)
        # Lightning gave the others the module's own arguments when the run started; some (MLflow)
        # refuse a second, different value for a key (learning_rate: auto, resolved here).
        given = set(getattr(pl_module, "hparams_initial", {}))
        for logger in loggers:
            if isinstance(logger, TensorBoardLogger):  # hparams with results: TensorBoard's HParams tab
                logger.log_hyperparams(hyperparameters, results, step=last)
                logger.experiment.flush()
            else:
                logger.log_hyperparams({key: value for key, value in hyperparameters.items() if key not in given})
                logger.log_metrics(results, last)
                logger.save()

    def _hyperparameters(self, trainer: pl.Trainer, pl_module: pl.LightningModule, reason: str) -> dict:
        data = trainer.datamodule
        splits = splits_of(data, pl_module.device)
        points = splits["train"].points if "train" in splits else None
        hparams = {
            "model": type(pl_module.model).__name__,
            "data": type(data).__name__,
            "points": points,
            "val_points": splits["val"].points if "val" in splits else None,
            "test_points": splits["test"].points if "test" in splits else None,
            "standardize": data.standardize if isinstance(data, PointData) else None,
            "batch_size": getattr(data, "batch_size", None) or points,  # full batch: all the points
            "max_steps": trainer.max_steps,
            "stop_reason": reason,
            **{f"init/{name}": value for name, value in self._initial.items()},
        }
        if isinstance(pl_module, GradientDescent):
            hparams |= {
                "learning_rate": pl_module.learning_rate,
                "reduction": pl_module.reduction,
                # None (left out) when the run failed before its optimizer was made
                "optimizer": type(trainer.optimizers[0]).__name__ if trainer.optimizers else None,
                "momentum": pl_module.momentum,
                "weight_decay": pl_module.weight_decay,
            }
        return {key: value for key, value in hparams.items() if value is not None}

    @staticmethod
    def _layout(named, has_val: bool, sharpness: bool) -> dict:
        """TensorBoard's Custom Scalars tab: each parameter beside its optimum, the loss (training and
        validation on one chart), the step size."""
        charts = {
            f"{name} (and its optimum)": ["Multiline", [f"params/{name}", f"optimum/{name}"]]
            for name, p in named
            if p.numel() == 1 and p.requires_grad
        }
        charts["loss"] = ["Multiline", ["train/loss", "val/loss"] if has_val else ["train/loss"]]
        charts["step size"] = ["Multiline", ["train/step_size"]]
        charts["gradients"] = ["Multiline", [r"grads/.*"]]
        if sharpness:
            edge = ["train/sharpness", "train/stability_limit"]
            charts["sharpness (and the edge of stability)"] = ["Multiline", edge]
        return {"Gradient descent": charts}
