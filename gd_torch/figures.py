"""The picture of the article: the loss landscape and the path gradient descent took on it.

For one learnable scalar parameter, the loss curve L(b) with the points descent visited; for two,
contours of L(m, b) with the path. matplotlib is imported only here, when the figure is drawn.
"""

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.func import functional_call

from gd_torch.module import GradientDescent, full_loss, step_loss
from gd_torch.stability import least_squares
from gd_torch.stopping import completed_step


class TrajectoryFigure(pl.Callback):
    """At the end of a run whose model has one or two learnable scalar parameters (others: nothing),
    draws the landscape with the path, logs it to TensorBoard's Images tab (tag ``trajectory``) and
    saves it as ``trajectory.png`` in the run directory, the path's points in its ``gd_torch.path``
    text field. The landscape is computed on at most ``max_points`` of the points (evenly strided).
    """

    def __init__(self, max_points: int = 10_000) -> None:
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        self.max_points = max_points

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        learnable = [(n, p) for n, p in pl_module.model.named_parameters() if p.requires_grad]
        self._params = learnable if len(learnable) in (1, 2) and all(p.numel() == 1 for _, p in learnable) else []
        # Where each step started and the loss there; kept on the device until the end.
        self._path = [torch.stack([p.detach().reshape(()) for _, p in self._params])] if self._params else []
        self._losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._params:
            self._losses.append(step_loss(outputs))
            self._path.append(torch.stack([p.detach().reshape(()) for _, p in self._params]))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, pl_module)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._draw(trainer, pl_module)  # a diverging path is worth seeing too

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run_dir = Path(trainer.log_dir)  # a broadcast under DDP: every process must ask
        points = getattr(trainer.datamodule, "points", None)
        if not self._params or not self._losses or not trainer.is_global_zero or points is None:
            return
        path = torch.stack(self._path).double().cpu()
        final = full_loss(trainer, pl_module).reshape(1)
        losses = torch.cat([torch.stack(self._losses), final]).double().cpu()
        names = [name for name, _ in self._params]
        optimum = least_squares(pl_module.model, *points) if len(names) == 2 else None
        figure = draw_trajectory(names, path, losses, self._landscape(pl_module, points, path), optimum)
        (line,) = [line for line in figure.axes[0].lines if line.get_gid() == "path"]  # as plotted
        metadata = {"gd_torch.path": json.dumps(line.get_xydata().tolist())}
        figure.savefig(run_dir / "trajectory.png", dpi=100, metadata=metadata)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure("trajectory", figure, global_step=max(completed_step(trainer), 0))
                logger.experiment.flush()

    def _landscape(self, pl_module: pl.LightningModule, points, path: torch.Tensor):
        """The loss on a grid around the path: (axes, values), values shaped like the grid."""
        x, y = points
        stride = max(1, math.ceil(len(y) / self.max_points))
        x, y = x[::stride], y[::stride]
        # A sum over a sample stands for the sum over all the points.
        scale = stride if isinstance(pl_module, GradientDescent) and pl_module.reduction == "sum" else 1
        finite = path[torch.isfinite(path).all(dim=1)]
        low, high = finite.min(dim=0).values, finite.max(dim=0).values
        margin = (high - low).clamp(min=1e-3) * 0.15
        size = 201 if len(low) == 1 else 81
        axes = [torch.linspace(a - m, b + m, size) for a, b, m in zip(low, high, margin, strict=True)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(axes))
        names = [name for name, _ in self._params]
        reduction = pl_module.reduction if isinstance(pl_module, GradientDescent) else "mean"

        def loss_at(point: torch.Tensor) -> torch.Tensor:
            params = dict(zip(names, point, strict=True))
            prediction = functional_call(pl_module.model, params, (x,))
            return torch.nn.functional.mse_loss(prediction, y, reduction=reduction) * scale

        with torch.no_grad():
            values = torch.vmap(loss_at)(grid.to(x.device, torch.float32))  # every grid point at once
        return axes, values.double().cpu().reshape(*(len(a) for a in axes))


def draw_trajectory(
    names: list[str], path: torch.Tensor, losses: torch.Tensor, landscape, optimum: dict[str, float] | None = None
):
    """A matplotlib Figure (800 x 500 pixels at 100 dpi); the path is the line with gid "path"."""
    from matplotlib.figure import Figure  # only here: a second of import for a picture at the end

    axes, values = landscape
    descent = {"color": "C3", "label": "gradient descent", "gid": "path"}
    figure = Figure(figsize=(8, 5), layout="constrained")
    ax = figure.add_subplot()
    if len(names) == 1:
        ax.plot(axes[0].numpy(), values.numpy(), color="0.6", label=f"loss L({names[0]})")
        ax.plot(path[:, 0].numpy(), losses.numpy(), "o-", markersize=4, **descent)
        ax.set_xlabel(names[0])
        ax.set_ylabel("loss")
    else:
        levels = torch.quantile(values.flatten(), torch.linspace(0.01, 0.99, 15, dtype=values.dtype)).unique()
        contours = ax.contour(axes[0].numpy(), axes[1].numpy(), values.T.numpy(), levels=levels.numpy(), cmap="viridis")
        figure.colorbar(contours, ax=ax, label="loss")
        ax.plot(path[:, 0].numpy(), path[:, 1].numpy(), "o-", markersize=3, **descent)
        if optimum:
            ax.plot(optimum[names[0]], optimum[names[1]], "*", color="k", markersize=12, label="least squares")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
    ax.set_title(f"{len(path) - 1} steps of gradient descent")
    ax.legend()
    return figure
