"""The LightningModule: gradient descent on mean squared error for any injected model."""

import math
from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.func import functional_call

from gd_torch.adapters.jsonargparse import optimizer_class_and_settings
from gd_torch.adapters.lightning import is_attached
from gd_torch.loss import REDUCTIONS, Reduction, batch_loss, divisor, squared_error
from gd_torch.models import Predictor, evaluating, predict
from gd_torch.schema import Schema
from gd_torch.splits import Split
from gd_torch.stability import Optimizer, Stability

# Rows differentiated at once in a streamed step: a chunk is cut into parts of this many, so what the
# model holds for backward (its activations) stays this size whatever chunk_rows is. Measured with
# a linear model: 4.0 ms per million rows at 262,144 against 5.4 ms at a million (a part's columns
# stay in cache between the forward and the backward).
DIFFERENTIATED = 1 << 18


class GradientDescent(pl.LightningModule):
    """Gradient descent on the mean squared error of an injected model.

    It minimises ``mse_loss(model(x), y, reduction=...)``. ``reduction="sum"`` is the article's sum of
    squared errors; ``"mean"`` divides the loss and its gradient by the number of points in the batch,
    so the same descent needs an N-times larger learning rate, and the step no longer grows with the
    batch size. The loss Hessian at the initial parameters (``self.stability``, see
    gd_torch.initial_curvature) gives the stable learning rate a run prints, and ``auto``.

    The loss takes x as the data hands it out (standardized when the data says so); ``forward`` and
    ``predictor()`` take raw x: the training split's feature statistics are buffers of this module
    (``x_mean``, ``x_std``), saved in checkpoints with the names of the features.

    Args:
        model: The nn.Module to fit, by class_path.
        learning_rate: The step size, > 0, or auto (plain SGD): half the stable bound at the initial parameters.
        reduction: sum (the article's sum of squared errors) or mean (divided by the points in the batch).
        momentum: SGD's heavy-ball momentum, in [0, 1).
        nesterov: Nesterov momentum instead (needs momentum > 0).
        weight_decay: SGD's L2 penalty, >= 0.
        optimizer: Another torch.optim optimizer by class_path (at learning_rate), instead of SGD.
        compile: Run the loss step through torch.compile.
    """

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float | Literal["auto"] = 0.01,
        reduction: Reduction = "mean",
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        optimizer: OptimizerCallable | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if learning_rate == "auto":
            if optimizer is not None:
                raise ValueError(
                    "learning_rate: auto needs plain SGD, whose stable learning rate is known; with another"
                    " optimizer give a number"
                )
        elif isinstance(learning_rate, str) or not (math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0 or auto, got {learning_rate}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs momentum > 0, got momentum 0")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        if optimizer is not None and (momentum or nesterov or weight_decay):
            raise ValueError(
                "momentum, nesterov and weight_decay set SGD; with another optimizer, set them in its init_args"
            )
        # The injected modules are rebuilt from the config; their weights travel in checkpoints.
        self.save_hyperparameters(ignore=["model", "optimizer"])
        self.model = model
        self.learning_rate = learning_rate
        self.reduction = reduction
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.optimizer = optimizer
        self._world_size = 1  # the number of DDP processes, known once the trainer sets up
        # torch.compile fuses the loss step (forward, loss and their backward) into fewer kernels
        # and less memory traffic; the first step pays for the compilation. It only shortens a step
        # whose time is the device's, not the host's (docs/performance.md). Compiling is lazy: only
        # the one a run calls (one process's loss, or the squared errors several processes add) is.
        self._loss = torch.compile(self._eager_loss) if compile else self._eager_loss
        self._squared_error = torch.compile(self._eager_squared_error) if compile else self._eager_squared_error
        # What the model's inputs and outputs are, learned from the data in setup (or from a checkpoint).
        self.schema: Schema | None = None
        self.register_buffer("x_mean", None)
        self.register_buffer("x_std", None)
        # The curvature at the initial parameters: set as the run sets up by the Curvature callback
        # (gd_torch.initial_curvature, the command's curvature: section), which also resolves auto.
        self.stability: Stability | None = None

    def setup(self, stage: str) -> None:
        self._world_size = self.trainer.world_size  # read at every step; the property chain is not free
        features = getattr(self.trainer.datamodule, "features", None)  # gd_torch.data.Features
        if features is not None:
            self.schema = getattr(self.trainer.datamodule, "schema", None)
            self.x_mean, self.x_std = features.mean, features.std

    @property
    def feature_names(self) -> list[str] | None:
        return self.schema.feature_names if self.schema else None

    def optimizer_settings(self) -> Optimizer:
        """What the stability bound depends on: SGD's settings, or the other optimizer's name."""
        if self.optimizer is None:
            return Optimizer("SGD", self.momentum, self.nesterov, self.weight_decay)
        cls, settings = optimizer_class_and_settings(self.optimizer)
        if cls is torch.optim.SGD and not settings.get("dampening"):
            names = ("momentum", "nesterov", "weight_decay")
            defaults = (0.0, False, 0.0)
            return Optimizer("SGD", *(settings.get(name, d) for name, d in zip(names, defaults, strict=True)))
        return Optimizer(cls.__name__ if cls is not None else "this optimizer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One prediction per point for raw x, in the target's units."""
        return predict(self.model, x, self.x_mean, self.x_std)

    def predictor(self) -> Predictor:
        """The trained model as a plain ``nn.Module`` of raw x, sharing this module's parameters."""
        return Predictor(self.model, self.schema or Schema([], ["y"]), self.x_mean, self.x_std)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._loss(x, y)

    def loss_fn(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The same loss as a function of the parameters (by name; the others keep their values), for
        ``torch.func`` transforms: the landscape of the trajectory picture, evaluated on a whole grid."""
        return batch_loss(functional_call(self.model, params, (x,)), y, self.reduction)

    def split_loss(self, split: Split) -> float:
        """The loss over every point of a split of the data (a :class:`gd_torch.splits.Split`, chunk by
        chunk) at the current parameters, in eval mode (no dropout drawn, batch norm on its running
        statistics): the chunks' squared errors summed in float64, divided as the step divides them."""
        total, count = torch.zeros((), dtype=torch.float64, device=self.device), 0
        with evaluating(self.model):
            for x, y in split.chunks():
                total += squared_error(self.model(x), y).double()
                count += y.numel()
        return (total / divisor(count, self.reduction)).item()

    def _eager_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return batch_loss(self.model(x), y, self.reduction)

    def _eager_squared_error(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return squared_error(self.model(x), y)

    def training_step(
        self, batch: "tuple[torch.Tensor, torch.Tensor] | Split", batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """``loss`` is what backward runs on; ``global_loss`` is the loss over the whole batch of every
        process, at the parameters *before* this step's update: the article's loss column."""
        if isinstance(batch, Split):  # a batch given as chunks: a streamed table, full batch
            return self._chunked_step(batch)
        if self._world_size == 1:
            loss = self.loss(*batch)
            # A copy, not a view: on CUDA the mean's result can share storage with its N-element
            # input, which would then stay alive as long as a callback keeps this value.
            return {"loss": loss, "global_loss": loss.detach().clone()}
        # Several processes, each with its own shard: DDP averages the gradients over them, so each
        # process's share of the global loss is scaled by the world size. For the sum that undoes
        # the averaging; for the mean the divisor is the global count of target values (points x
        # targets), not the local one.
        x, y = batch
        error = self._squared_error(x, y)
        local = torch.stack([error.detach(), torch.tensor(float(y.numel()), device=y.device)])
        total_error, total_count = self.trainer.strategy.reduce(local, reduce_op="sum")
        by = divisor(total_count, self.reduction)
        return {"loss": error * self._world_size / by, "global_loss": total_error / by}

    def on_validation_epoch_start(self) -> None:
        self._validation = torch.zeros(2, dtype=torch.float64, device=self.device)  # squared errors, values

    def _chunked_step(self, batch: Split) -> dict[str, torch.Tensor]:
        """One update from every chunk of a batch too large to hold: each chunk's squared errors are
        differentiated and freed, their gradients summed. What backward runs on is ``(params * gradient)``
        scaled as the loss is divided (its gradient is the summed one; under DDP the processes' are then
        averaged as for any batch), with the value of the loss over every process's points."""
        learnable = [p for p in self.model.parameters() if p.requires_grad]
        gradient = [torch.zeros_like(p) for p in learnable]
        errors = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0  # target values, counted on the host: no tensor made per part
        for chunk_x, chunk_y in batch.chunks():
            for start in range(0, len(chunk_y), DIFFERENTIATED):
                x, y = chunk_x[start : start + DIFFERENTIATED], chunk_y[start : start + DIFFERENTIATED]
                error = self._squared_error(x, y)
                parts = torch.autograd.grad(error, learnable, allow_unused=True)
                for total, part in zip(gradient, parts, strict=True):
                    if part is not None:
                        total += part
                errors += error.detach().double()
                count += y.numel()
        local = torch.stack([errors, torch.tensor(float(count), dtype=torch.float64, device=self.device)])
        total_error, total_count = (
            self.trainer.strategy.reduce(local, reduce_op="sum") if self._world_size > 1 else local
        )
        by = divisor(total_count, self.reduction)
        surrogate = sum((p * g).sum() for p, g in zip(learnable, gradient, strict=True)) * (self._world_size / by)
        loss = (total_error / by).float()
        return {"loss": surrogate - surrogate.detach() + loss, "global_loss": loss}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Sums the squared errors and the target values of each validation batch (one batch of a
        PointData's split, or a DataModule's many)."""
        x, y = batch
        error = squared_error(self.model(x), y).double()
        self._validation += torch.stack([error, torch.tensor(float(y.numel()), device=self.device)])

    def on_validation_epoch_end(self) -> None:
        """``val/loss``: the training loss and reduction over the whole validation split, summed over the
        batches and the processes (each validates its own shard), then divided as the step divides.
        Logged for callbacks that monitor it (EarlyStopping, ModelCheckpoint); the Dashboard writes it
        out at the step it belongs to."""
        totals = self._validation
        if self._world_size > 1:
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        error, count = totals
        if count == 0:
            return
        self.log("val/loss", (error / divisor(count, self.reduction)).float(), logger=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["feature_names"] = self.feature_names
        checkpoint["schema"] = self.schema.as_dict() if self.schema else None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._apply_learning_rate(checkpoint)
        state = checkpoint["state_dict"]
        in_checkpoint, here = "x_mean" in state, self.x_mean is not None
        if in_checkpoint != here and is_attached(self):
            raise ValueError(
                f"the checkpoint was trained {'with' if in_checkpoint else 'without'} standardized features and"
                f" this run is {'with' if here else 'without'}; resume with the data's standardize as it was"
            )
        if in_checkpoint and not here:  # load_from_checkpoint: the statistics come from the checkpoint alone
            self.x_mean, self.x_std = state["x_mean"], state["x_std"]
        if not is_attached(self):
            # Loaded to be used: in the dtype it was trained in (float64 under 64-true), taken before
            # Lightning copies the weights in (a float32 model would round them).
            self._take_dtype_of(state)
        if self.schema is None and checkpoint.get("schema"):
            self.schema = Schema.from_dict(checkpoint["schema"])
        elif self.schema is None and checkpoint.get("feature_names"):  # a checkpoint from before schemas
            self.schema = Schema(list(checkpoint["feature_names"]), ["y"])

    def _take_dtype_of(self, state: dict) -> None:
        """The model (and the statistics) in the floating dtype of the saved weights, where they have one."""
        dtypes = {value.dtype for key, value in state.items() if key.startswith("model.") and value.is_floating_point()}
        if len(dtypes) == 1:
            self.to(dtypes.pop())

    def _apply_learning_rate(self, checkpoint: dict) -> None:
        """A run resumed with another learning rate trains at it: the optimizer's state saved in the
        checkpoint (which Lightning loads after this hook, over the rate the optimizer was made with)
        gets the new rate, and so does a scheduler's base. The command says so as it resumes."""
        saved = checkpoint.get("hyper_parameters", {}).get("learning_rate")
        rate = self.learning_rate
        if not is_attached(self) or rate == "auto" or not isinstance(saved, int | float) or saved == rate:
            return
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                group["lr"] = rate
                if "initial_lr" in group:
                    group["initial_lr"] = rate
        for state in checkpoint.get("lr_schedulers", []):
            if "base_lrs" in state:
                state["base_lrs"] = [rate] * len(state["base_lrs"])
        checkpoint["hyper_parameters"]["learning_rate"] = rate

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.learning_rate == "auto":
            raise ValueError(
                "learning_rate: auto is resolved by the gd_torch.initial_curvature.Curvature callback"
                " (the command's curvature: section); add it to the trainer's callbacks"
            )
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer is not None:
            return self.optimizer(trainable, lr=self.learning_rate)
        return torch.optim.SGD(
            trainable,
            lr=self.learning_rate,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )


def step_loss(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss a callback reports for a step: over all processes' batches when the module says so
    (``global_loss``), else the ``loss`` any LightningModule returns."""
    return outputs.get("global_loss", outputs["loss"]).detach()
