"""Lightning's insides that the project relies on: ModelCheckpoint's saving machinery (for a schedule
of the project's own and an atomic write), the progress bar's counter, the batches done in an epoch
(for a resumable mini-batch loader) and whether a module is attached to a trainer.
"""

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import _update_n

from gd_torch.files import replace_durably


class LastCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint reduced to ``checkpoints/last.ckpt``, saved when a subclass says so
    (:meth:`write_last`), each write whole: to a temporary file beside it, renamed over ``last.ckpt``
    once complete, so the file is at every instant the previous checkpoint or the new one."""

    def __init__(self) -> None:
        # Lightning's own schedules off: only last.ckpt, on the subclass's schedule.
        super().__init__(save_last=True, save_top_k=0, every_n_epochs=0)

    def may_save(self, trainer: pl.Trainer) -> bool:
        """False while Lightning would not save (sanity checking, fast_dev_run, a step saved already)."""
        return not self._should_skip_saving_checkpoint(trainer)

    def write_last(self, trainer: pl.Trainer) -> None:
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @property
    def last_saved_step(self) -> int:
        return self._last_global_step_saved

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        partial = Path(filepath).with_name(f".{Path(filepath).name}.partial")
        try:
            super()._save_checkpoint(trainer, str(partial))  # every process takes part; rank zero writes
            if trainer.is_global_zero:
                replace_durably(partial, Path(filepath))
        except BaseException:  # a second Ctrl-C mid-write: the previous whole checkpoint stays
            partial.unlink(missing_ok=True)
            raise
        trainer.strategy.barrier()
        self._last_checkpoint_saved = filepath


def set_progress(bar, n: int) -> None:
    """Move a Lightning tqdm bar to ``n`` (and redraw it), as Lightning's own bars do."""
    _update_n(bar, n)


def redraw_due(progress_bar: TQDMProgressBar, n: int, total: int | None) -> bool:
    """Whether a Lightning tqdm progress bar redraws at ``n`` (its refresh rate, and the last one)."""
    return progress_bar._should_update(n, total)


def batches_done_this_epoch(trainer: pl.Trainer) -> int:
    """How many batches of the current epoch have been trained on (for a mid-epoch checkpoint)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def is_attached(module: pl.LightningModule) -> bool:
    """Whether ``module`` belongs to a trainer (``module.trainer`` raises when it does not)."""
    return module._trainer is not None


def set_default_root_dir(trainer: pl.Trainer, path: Path) -> None:
    """Make ``path`` the trainer's ``default_root_dir`` after it was built (Lightning has no setter): its
    ``log_dir`` and its checkpoints' directory when no logger names one."""
    trainer._default_root_dir = str(path)
