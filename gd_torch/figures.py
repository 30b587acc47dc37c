"""Pictures of a run, drawn once at the end into the run directory and TensorBoard's Images tab.

- TrajectoryFigure (``trajectory.png``): the loss landscape and the path gradient descent took on it;
  for one learnable scalar parameter the loss curve L(b) with the points descent visited, for two
  the contours of L(m, b) with the path.
- FitFigure (``fit.png``): the data and the trained model; for one feature the points and the fitted
  curve, for several the predictions against the targets beside the diagonal y = x.
- LossFigure (``loss.png``): the training loss and the validation loss against the steps, log scale.

These callbacks gather what a picture shows; :mod:`gd_torch.drawing` draws it.
"""

import json
import math
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from gd_torch.drawing import draw_fit, draw_losses, draw_trajectory
from gd_torch.files import written_whole
from gd_torch.models import evaluating
from gd_torch.module import GradientDescent, step_loss
from gd_torch.optimum import NoOptimum, least_squares
from gd_torch.outcome import outcome_of
from gd_torch.rundir import run_directory
from gd_torch.splits import Split, splits_of
from gd_torch.stopping import completed_step


class TrajectoryFigure(pl.Callback):
    """``trajectory.png``: the loss landscape and the path descent took on it, at the end of a run.

    For a model with one or two learnable scalar parameters (others: nothing), it draws the landscape
    with the path, logs it to TensorBoard's Images tab (tag ``trajectory``) and saves it as
    ``trajectory.png`` in the run directory, the path's points in its ``gd_torch.path`` text field.

    A long run's path is thinned as it goes (past ``max_path_points`` kept steps, every other one is
    dropped and every second step kept from then on), so its memory, the picture and its text field
    stay bounded whatever the number of steps; the start and the end are always drawn.

    Args:
        max_points: The landscape is computed on at most this many points (evenly strided).
        max_path_points: The most steps of the path kept (and drawn).
    """

    def __init__(self, max_points: int = 10_000, max_path_points: int = 2000) -> None:
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        if max_path_points < 2:
            raise ValueError(f"max_path_points must be >= 2, got {max_path_points}")
        self.max_points = max_points
        self.max_path_points = max_path_points
        self._params: list = []  # set when training starts; none for a run that failed before
        self._path: list[torch.Tensor] = []  # where kept steps started, on the device until the end
        self._losses: list[torch.Tensor] = []  # the loss there
        self._stride = 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        learnable = [(n, p) for n, p in pl_module.model.named_parameters() if p.requires_grad]
        self._params = learnable if len(learnable) in (1, 2) and all(p.numel() == 1 for _, p in learnable) else []
        self._path, self._losses, self._stride = [], [], 1
        self._at = self._where() if self._params else None  # where the next step starts

    def _where(self) -> torch.Tensor:
        return torch.stack([p.detach().reshape(()) for _, p in self._params])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._params:
            return
        if completed_step(trainer) % self._stride == 0:
            self._path.append(self._at)
            self._losses.append(step_loss(outputs))
            if len(self._path) > self.max_path_points:
                self._path, self._losses, self._stride = self._path[::2], self._losses[::2], self._stride * 2
        self._at = self._where()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A diverged path is worth seeing too; a picture that cannot be drawn is a note, not a failure.
        drawn_or_said(self._draw, trainer, pl_module, "trajectory.png")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # An interrupted path is worth seeing too; a model that failed is not run again.
        if isinstance(exception, KeyboardInterrupt):
            drawn_or_said(self._draw, trainer, pl_module, "trajectory.png")

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run_dir = run_directory(trainer)  # found at the set-up, on every process
        points = splits_of(trainer.datamodule, pl_module.device).get("train")
        if not self._params or not self._losses or not trainer.is_global_zero or points is None:
            return
        if not isinstance(pl_module, GradientDescent):  # the landscape is its loss
            return
        path = torch.stack([*self._path, self._at]).double().cpu()  # ... and where the last step ended
        final_loss = outcome_of(trainer, pl_module).final_loss  # None: not measured or not finite
        final = torch.tensor([math.nan if final_loss is None else final_loss])
        losses = torch.cat([torch.stack(self._losses).double().cpu(), final.double()])
        finite = torch.isfinite(path).all(dim=1) & torch.isfinite(losses)  # a blown-up path ends off the chart
        path, losses = path[finite], losses[finite]
        if len(path) == 0:
            return
        names = [name for name, _ in self._params]
        try:
            optimum = least_squares(pl_module.model, points.chunks()) if len(names) == 2 else None
        except NoOptimum:  # said at the start (the Dashboard's note)
            optimum = None
        figure = draw_trajectory(names, path, losses, self._landscape(pl_module, points, path), optimum)
        (line,) = [line for line in figure.axes[0].lines if line.get_gid() == "path"]  # as plotted
        metadata = {"gd_torch.path": json.dumps(line.get_xydata().tolist())}
        publish(trainer, figure, run_dir, "trajectory", metadata)

    def _landscape(self, pl_module: pl.LightningModule, points: Split, path: torch.Tensor):
        """The loss on a grid around the path: (axes, values), values shaped like the grid."""
        x, y, weight = points.spread(self.max_points)
        # A sum over a sample stands for the sum over all the points.
        scale = weight if pl_module.reduction == "sum" else 1
        finite = path[torch.isfinite(path).all(dim=1)]
        low, high = finite.min(dim=0).values, finite.max(dim=0).values
        margin = (high - low).clamp(min=1e-3) * 0.15
        size = 201 if len(low) == 1 else 81
        axes = [torch.linspace(a - m, b + m, size) for a, b, m in zip(low, high, margin, strict=True)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(axes))
        names = [name for name, _ in self._params]

        def loss_at(point: torch.Tensor) -> torch.Tensor:
            return pl_module.loss_fn(dict(zip(names, point, strict=True)), x, y) * scale

        with torch.no_grad():
            values = torch.vmap(loss_at)(grid.to(x.device, torch.float32))  # every grid point at once
        return axes, values.double().cpu().reshape(*(len(a) for a in axes))


def drawn_or_said(draw, trainer: pl.Trainer, pl_module, name: str) -> None:
    """Draw a picture while a run ends on an exception: a picture that cannot be drawn is said in one
    line, never raised over the exception that ended the run."""
    try:
        if pl_module is None:
            draw(trainer)
        else:
            draw(trainer, pl_module)
    except Exception as error:
        print(f"note: {name} was not drawn: {' '.join(str(error).split())}", file=sys.stderr)


def publish(trainer: pl.Trainer, figure, run_dir: Path, tag: str, metadata: dict | None = None) -> None:
    """``<tag>.png`` in the run directory (800 x 500 pixels) and ``tag`` in TensorBoard's Images tab.

    The figure is rendered once and the same pixels go to both (``savefig`` and ``add_figure`` would
    each render it again: most of a short run's end)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())  # (height, width, 4), at the figure's 100 dpi
    with written_whole(run_dir / f"{tag}.png") as temporary:
        imsave(temporary, pixels, format="png", metadata=metadata)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            step = max(completed_step(trainer), 0)
            logger.experiment.add_image(tag, pixels[:, :, :3], global_step=step, dataformats="HWC")
            logger.experiment.flush()


class FitFigure(pl.Callback):
    """``fit.png``: the data and what the trained model makes of it, at the end of a run.

    In the data's own units (standardization undone). One feature: each split's points and the
    fitted curve over their range. Several: predictions against targets, one colour per split,
    beside y = x.

    Args:
        max_points: At most this many points of each split are drawn (evenly strided).
    """

    def __init__(self, max_points: int = 2000) -> None:
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        self.max_points = max_points

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        drawn_or_said(self._draw, trainer, pl_module, "fit.png")  # a diverged model may not be drawable

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run_dir = run_directory(trainer)  # found at the set-up, on every process
        splits = splits_of(trainer.datamodule, pl_module.device)
        if not trainer.is_global_zero or not splits or not isinstance(pl_module, GradientDescent):
            return
        features = getattr(trainer.datamodule, "features", None)  # a PointData's; a DataModule's x is as given
        predictor = pl_module.predictor()
        shown = {}
        for name, split in splits.items():
            x, y, _ = split.spread(self.max_points)
            raw = x if features is None or features.mean is None else x * features.std + features.mean
            with evaluating(predictor):
                prediction = predictor(raw)
            shown[name] = (raw.double().cpu(), y.double().cpu(), prediction.double().cpu())
        curve = None
        if all(raw.dim() == 1 and y.dim() == 1 for raw, y, _ in shown.values()):  # one feature, one target
            low = min(raw.min().item() for raw, _, _ in shown.values())
            high = max(raw.max().item() for raw, _, _ in shown.values())
            grid = torch.linspace(low, high, 400, device=pl_module.device)
            with evaluating(predictor):
                curve = (grid.double().cpu(), predictor(grid).double().cpu())
        schema = pl_module.predictor().schema  # the data's column names (x, y for a DataModule's own)
        figure = draw_fit(shown, curve, schema.feature_names or ["x"], ", ".join(schema.y))
        publish(trainer, figure, run_dir, "fit")


class LossFigure(pl.Callback):
    """``loss.png``: the training loss and the validation loss against the steps, at the end of a run.

    The training loss at every step and ``val/loss`` where it was measured, on a log scale.

    Memory stays bounded on long runs: past ``max_points`` kept steps, every other one is dropped and
    only every second step is kept from then on (the curve keeps its shape, at a coarser stride).

    Args:
        max_points: The most training-loss points kept (and drawn).
    """

    def __init__(self, max_points: int = 4096) -> None:
        if max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {max_points}")
        self.max_points = max_points
        self._steps: list[int] = []
        self._losses: list[torch.Tensor] = []  # on the device until the end
        self._val: list[tuple[int, torch.Tensor]] = []
        self._stride = 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = completed_step(trainer)
        if step % self._stride:
            return
        self._steps.append(step)
        self._losses.append(step_loss(outputs))
        if len(self._steps) > self.max_points:
            self._steps, self._losses, self._stride = self._steps[::2], self._losses[::2], self._stride * 2

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/loss")
        if value is not None and not trainer.sanity_checking:
            self._val.append((trainer.global_step, value.detach().clone()))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        drawn_or_said(self._draw, trainer, None, "loss.png")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        drawn_or_said(self._draw, trainer, None, "loss.png")  # how a diverging or failing run got there

    def _draw(self, trainer: pl.Trainer) -> None:
        run_dir = run_directory(trainer)  # found at the set-up, on every process
        if not trainer.is_global_zero or not self._losses:
            return
        losses = torch.stack(self._losses).double().cpu()
        val = torch.stack([v for _, v in self._val]).double().cpu() if self._val else None
        steps, val_steps = torch.tensor(self._steps), torch.tensor([s for s, _ in self._val])
        kept = torch.isfinite(losses)  # a blown-up loss ends off the chart
        steps, losses = steps[kept].tolist(), losses[kept]
        if val is not None:
            val_kept = torch.isfinite(val)
            val_steps, val = val_steps[val_kept].tolist(), val[val_kept]
        if not steps:
            return
        figure = draw_losses(steps, losses, val_steps, val)
        publish(trainer, figure, run_dir, "loss")
