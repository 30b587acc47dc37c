"""``checkpoints/last.ckpt``, kept fresh while a run goes on and written so that it is always whole.

A kill -9, an out-of-memory kill or a lost machine then costs at most ``every_n_steps`` steps or
``every_minutes`` of work, and ``--ckpt_path`` continues from the file bit for bit.
"""

import os
import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class PeriodicCheckpoint(ModelCheckpoint):
    """Refreshes ``checkpoints/last.ckpt`` every ``every_n_steps`` steps and every ``every_minutes``
    minutes, whichever comes first, and at the end of the run (Ctrl-C included).

    Each write goes to a temporary file beside it, renamed over ``last.ckpt`` once complete (an atomic
    rename), so the file is at every instant the previous checkpoint or the new one, whole. Callbacks
    that keep values to write later (the Dashboard) write them out at the same moment.

    Args:
        every_n_steps: Save at least every this many steps; 0 = not by steps.
        every_minutes: Save at least every this many minutes of training; 0 = not by time.
    """

    def __init__(self, every_n_steps: int = 1000, every_minutes: float = 10.0) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0 (0 = not by steps), got {every_n_steps}")
        if not every_minutes >= 0:
            raise ValueError(f"every_minutes must be a number >= 0 (0 = not by time), got {every_minutes}")
        # Lightning's own schedules off: only last.ckpt, on this callback's schedule.
        super().__init__(save_last=True, save_top_k=0, every_n_epochs=0)
        self.every_n_steps = every_n_steps
        self.every_seconds = every_minutes * 60
        self._last_saved_at = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_saved_at = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        by_steps = self.every_n_steps and trainer.global_step % self.every_n_steps == 0
        by_time = self.every_seconds and time.monotonic() - self._last_saved_at >= self.every_seconds
        if by_time and trainer.world_size > 1:  # every process must save at the same step
            by_time = trainer.strategy.reduce_boolean_decision(bool(by_time), all=False)
        # The last step (max_steps, or a stop asked for by Ctrl-C or the step-size rule: this callback
        # runs after the others) is saved here, mid-epoch as it is: Lightning closes the epoch once the
        # loop ends, and a mini-batch run resumed from there would start the next epoch's shuffle.
        last = trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step
        if (by_steps or by_time or last) and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_saved_at = time.monotonic()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:  # the final state, unless just saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        partial = Path(filepath).with_name(f".{Path(filepath).name}.partial")
        try:
            super()._save_checkpoint(trainer, str(partial))  # every process takes part; rank zero writes
            if trainer.is_global_zero:
                os.replace(partial, filepath)
        except BaseException:  # a second Ctrl-C mid-write: the previous whole checkpoint stays
            partial.unlink(missing_ok=True)
            raise
        trainer.strategy.barrier()
        self._last_checkpoint_saved = filepath
