"""``checkpoints/last.ckpt``, kept fresh while a run goes on and written so that it is always whole.

A kill -9, an out-of-memory kill or a lost machine then costs at most ``every_n_steps`` steps or
``every_minutes`` of work, and ``--ckpt_path`` continues from the file bit for bit.
"""

import copy
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint

from gd_torch.adapters.lightning import LastCheckpoint
from gd_torch.outcome import requested_stop


class PeriodicCheckpoint(LastCheckpoint):
    """Refreshes ``checkpoints/last.ckpt`` every ``every_n_steps`` steps and every ``every_minutes``
    minutes, whichever comes first, and at the end of the run (Ctrl-C included; not a diverged state,
    so the file stays the last good one).

    Each write goes to a temporary file beside it, renamed over ``last.ckpt`` once complete (an atomic
    rename), so the file is at every instant the previous checkpoint or the new one, whole. Callbacks
    that keep values to write later (the Dashboard) write them out at the same moment.

    Under DDP every process must save at the same step (the save is collective): whether the time has
    come is decided by rank zero's clock and broadcast to the others at every step, as Lightning's own
    ``ModelCheckpoint(train_time_interval=...)`` does.

    Args:
        every_n_steps: Save at least every this many steps; 0 = not by steps.
        every_minutes: Save at least every this many minutes of training; 0 = not by time.
    """

    def __init__(self, every_n_steps: int = 1000, every_minutes: float = 10.0) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0 (0 = not by steps), got {every_n_steps}")
        if not every_minutes >= 0:
            raise ValueError(f"every_minutes must be a number >= 0 (0 = not by time), got {every_minutes}")
        super().__init__()
        self.every_n_steps = every_n_steps
        self.every_seconds = every_minutes * 60
        self._last_saved_at = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_saved_at = time.monotonic()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        """Before any checkpoint callback takes its state back (Lightning calls every callback's
        ``on_load_checkpoint`` first): each one's saved paths are kept only where they name a file in
        its own directory, so that resuming from a checkpoint someone else wrote removes or replaces
        nothing else (Lightning removes the previous ``last_model_path`` and a top-k's worst as it saves,
        and compares paths without resolving ``..`` or links)."""
        states = checkpoint.get("callbacks") or {}
        dropped = []
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key)
            if isinstance(callback, ModelCheckpoint) and isinstance(state, dict) and callback.dirpath:
                dropped += confine(state, callback)
        if dropped and trainer.is_global_zero:
            print(
                f"Resuming: dropped {len(dropped)} saved checkpoint path{'s' if len(dropped) > 1 else ''} outside"
                f" the run's checkpoints/ ({', '.join(dropped[:3])}): a resumed run removes or replaces nothing"
                " outside its own checkpoints/",
                flush=True,
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        by_steps = bool(self.every_n_steps) and trainer.global_step % self.every_n_steps == 0
        by_time = bool(self.every_seconds) and time.monotonic() - self._last_saved_at >= self.every_seconds
        if self.every_seconds and trainer.world_size > 1:
            by_time = trainer.strategy.broadcast(by_time, src=0)  # every process, every step: rank zero's clock
        # The last step (max_steps, or a stop asked for by Ctrl-C or the step-size rule: checkpoint
        # callbacks run after the others) is saved here, mid-epoch as it is: Lightning closes the epoch
        # once the loop ends, and a mini-batch run resumed from there would start the next epoch's shuffle.
        last = trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step
        if last and self._diverged(trainer):
            return
        if (by_steps or by_time or last) and self.may_save(trainer):
            self.write_last(trainer)
            self._last_saved_at = time.monotonic()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The final state, unless just saved (or diverged).
        if self.last_saved_step != trainer.global_step and not self._diverged(trainer):
            self.write_last(trainer)

    @staticmethod
    def _diverged(trainer: pl.Trainer) -> bool:
        requested = requested_stop(trainer)
        return requested is not None and requested[0] == "diverged"


# A ModelCheckpoint's ranking of the files it saved (its state_dict's keys): taken back whole or not at all.
RANKING = ("best_model_path", "best_model_score", "kth_best_model_path", "kth_value", "best_k_models")


def confine(state: dict[str, Any], callback: ModelCheckpoint) -> list[str]:
    """Keep the saved paths of a ModelCheckpoint's ``state`` that name a file directly in its directory
    (resolved, links followed; a directory that is itself a link keeps none), spelled as
    ``<dirpath>/<name>``. A ``last_model_path`` outside is dropped; a ranking (the best and top-k files)
    naming any file outside starts anew, as the callback's own (not yet restored) values. Only what
    Lightning takes back is looked at (from another directory's state, the best path alone). Returns
    the paths dropped."""
    directory = Path(callback.dirpath)
    real = None if directory.is_symlink() else directory.resolve()

    def inside(path: Any) -> bool:
        return isinstance(path, str) and real is not None and Path(path).resolve().parent == real

    def respelled(path: str) -> str:
        return str(directory / Path(path).name)

    if state.get("dirpath", callback.dirpath) != callback.dirpath:
        # Another directory's state (resumed into a new run directory): Lightning takes back only its
        # best_model_path, which a top-1 ModelCheckpoint removes as it saves; the rest stays unread.
        best = state.get("best_model_path")
        if best and not inside(best):
            state["best_model_path"] = ""
            return [str(best)]
        return []
    dropped = []
    last = state.get("last_model_path")
    if last and inside(last):
        state["last_model_path"] = respelled(last)
    elif last:
        state["last_model_path"] = ""
        dropped.append(str(last))
    ranked = state.get("best_k_models")
    named = [
        state.get("best_model_path"),
        state.get("kth_best_model_path"),
        *(ranked if isinstance(ranked, dict) else {}),
    ]
    outside = [str(path) for path in named if path and not inside(path)]
    if outside or not isinstance(ranked, dict | None):
        for key in RANKING:
            state[key] = copy.deepcopy(getattr(callback, key))
        return list(dict.fromkeys(dropped + outside))
    for key in ("best_model_path", "kth_best_model_path"):
        if state.get(key):
            state[key] = respelled(state[key])
    if ranked:
        state["best_k_models"] = {respelled(path): score for path, score in ranked.items()}
    return dropped
