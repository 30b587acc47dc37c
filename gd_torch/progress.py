"""A progress bar in steps: for configs that print no table, how far the run is, its loss and its speed."""

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from gd_torch.adapters.lightning import redraw_due, set_progress
from gd_torch.module import step_loss


class StepProgressBar(TQDMProgressBar):
    """Lightning's progress bar, counting steps (updates) up to ``trainer.max_steps`` across epochs,
    with the loss of the latest step and steps per second: ``Steps: 40%|████ | 800/2000 [00:01, 790it/s,
    loss=0.0123]``. The loss is read from the device only when the bar is redrawn.

    Args:
        refresh_rate: Redraw every this many steps.
    """

    def __init__(self, refresh_rate: int = 10) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self._loss = None
        self._steps_bar_ready = False

    def on_train_epoch_start(self, trainer: pl.Trainer, *_) -> None:
        if self._steps_bar_ready:
            return  # one bar for the whole run, not one per epoch
        super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps if trainer.max_steps > 0 else None)
        bar.initial = trainer.global_step  # a resumed run starts where its checkpoint was
        set_progress(bar, trainer.global_step)
        bar.set_description("Steps")
        self._steps_bar_ready = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._loss = step_loss(outputs)
        step = trainer.global_step
        bar = self.train_progress_bar
        if bar is not None and redraw_due(self, step, bar.total):
            set_progress(bar, step)
            bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # the bar goes on into the next epoch; it closes when training ends

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        bar = self.train_progress_bar
        if bar is not None and not bar.disable:
            set_progress(bar, trainer.global_step)  # the step it stopped at, between two redraws
            bar.set_postfix(self.get_metrics(trainer, pl_module))
        super().on_train_end(trainer, pl_module)

    def init_validation_tqdm(self):
        # Validation is one batch every val_check_interval steps: val/loss goes to the loggers,
        # and a bar for it would only flicker below this one.
        return Tqdm(disable=True)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        metrics = {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}
        if self._loss is not None:
            metrics["loss"] = f"{self._loss.item():.4g}"
        return metrics
