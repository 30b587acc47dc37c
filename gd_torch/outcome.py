"""How a run ended, decided in one place: why it stopped, after how many steps, the final loss and
metrics, and the exit code the command returns.

Stop rules (the step-size rule, divergence, Ctrl-C and SIGTERM) work as Lightning's ``EarlyStopping``
does: each one records its reason and sets ``trainer.should_stop``, and Lightning ends the run after
the current step as it ends any run (logs, checkpoint, summary). Nothing raises to stop a run; only a
model that fails (or a second Ctrl-C) ends it through an exception.

:func:`outcome_of` decides the outcome once, when training has ended, and every reader (the summary,
the dashboard, the pictures, the command's exit code, ``gd_torch.fit``) gets that same object.
"""

import math
import weakref
from dataclasses import dataclass, field

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

from gd_torch.errors import ConfigError, one_line
from gd_torch.metrics import split_metrics
from gd_torch.signals import EXIT_HANGUP, EXIT_INTERRUPTED, EXIT_TERMINATED, StoppedBeforeTraining
from gd_torch.splits import splits_of

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2  # and a signal's, from gd_torch.signals

# When two rules stop the same step, the reason that matters most to the user is the one reported,
# whatever the order the callbacks ran in.
PRECEDENCE = ("failed", "diverged", "terminated", "hangup", "interrupted", "converged", "early_stopping")
EXIT_CODES = {"failed": EXIT_FAILED, "diverged": EXIT_FAILED, "interrupted": EXIT_INTERRUPTED,
              "terminated": EXIT_TERMINATED, "hangup": EXIT_HANGUP}  # fmt: skip


class StopRule(pl.Callback):
    """A rule that ends training after the current step: :meth:`stop` records the reason (and a message
    for the console) and sets ``trainer.should_stop``. The first reason a rule records is its reason."""

    stopping_reason: str | None = None
    stopping_message: str | None = None

    def stop(self, trainer: pl.Trainer, reason: str, message: str | None = None) -> None:
        if self.stopping_reason is None:
            self.stopping_reason, self.stopping_message = reason, message
        trainer.should_stop = True


@dataclass
class Outcome:
    """How a run ended.

    Attributes:
        reason: ``max_steps``, ``max_epochs``, ``converged``, ``early_stopping``, ``diverged``,
            ``interrupted``, ``terminated``, ``hangup`` (the terminal closed) or ``failed``.
        steps: The optimizer updates taken.
        message: What the console says about it (the divergence, the failure), or None.
        final_loss: The loss over the training split at the final parameters (in eval mode); None when
            it was not measured (a run that ended on an exception) or is not finite.
        metrics: ``{split: {mse, rmse, mae, r2, ...}}`` at the final parameters, when measured
            (gd_torch.metrics: per target too, and accuracy for a class).
    """

    reason: str
    steps: int
    message: str | None = None
    final_loss: float | None = None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    measured: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.reason, EXIT_OK)


def requested_stop(trainer: pl.Trainer) -> tuple[str, str | None] | None:
    """The reason (and message) a stop rule gave, the most important one first; None if none stopped."""
    requested = {}
    for callback in trainer.callbacks:
        if isinstance(callback, StopRule) and callback.stopping_reason:
            requested.setdefault(callback.stopping_reason, callback.stopping_message)
        # Lightning's own EarlyStopping, configured on val/loss (or any logged value).
        elif isinstance(callback, EarlyStopping) and callback.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            requested.setdefault("early_stopping", callback.stopping_reason_message)
    for reason in PRECEDENCE:
        if reason in requested:
            return reason, requested[reason]
    return None


def decide(trainer: pl.Trainer, exception: BaseException | None = None) -> tuple[str, str | None]:
    """Why the run ended: a stop rule's reason, the budget, or the exception that ended it."""
    if isinstance(exception, KeyboardInterrupt):  # a second Ctrl-C, during the graceful end
        return requested_stop(trainer) or ("interrupted", None)
    if exception is not None:
        return "failed", failure_message(exception)
    requested = requested_stop(trainer)
    if requested:
        return requested
    return ("max_steps", None) if 0 <= trainer.max_steps <= trainer.global_step else ("max_epochs", None)


def failure_message(exception: BaseException) -> str:
    """The console's line for a model that failed: its own message, on one line."""
    return f"training failed: {one_line(str(exception))}"


_OUTCOMES: "weakref.WeakKeyDictionary[pl.Trainer, Outcome]" = weakref.WeakKeyDictionary()


def nothing_trained(exception: BaseException) -> bool:
    """Whether ``exception`` ended the set-up before the first step for a reason of the user's (a
    signal, or a setting found invalid only then, like ``curvature.enforce``): the command takes the
    run directory back, and the callbacks write nothing for it."""
    return isinstance(exception, StoppedBeforeTraining | ConfigError)


def decided(trainer: pl.Trainer) -> bool:
    """Whether the run has ended and its outcome been decided (training started, then stopped)."""
    return trainer in _OUTCOMES


def outcome_of(
    trainer: pl.Trainer, pl_module: pl.LightningModule | None = None, exception: BaseException | None = None
) -> Outcome:
    """The run's outcome, decided (and measured) the first time it is asked for after training ended.

    The final loss and metrics are measured once, on rank zero, over every split of the data, unless
    the run ended on an exception: that would run a model that may have just failed again.
    """
    outcome = _OUTCOMES.get(trainer)
    if outcome is not None:
        return outcome
    reason, message = decide(trainer, exception)
    outcome = Outcome(reason, trainer.global_step, message)
    measurable = exception is None and trainer.is_global_zero and hasattr(pl_module, "split_loss")
    splits = splits_of(trainer.datamodule, pl_module.device) if measurable else {}
    if "train" in splits:
        loss = pl_module.split_loss(splits["train"])
        outcome.final_loss = loss if math.isfinite(loss) else None
        schema = getattr(pl_module, "schema", None)  # the targets' names, and whether they are a class
        targets = (schema.target_names, schema.one_hot_target) if schema else (None, False)
        outcome.metrics = split_metrics(pl_module.model, splits, *targets)
        outcome.measured = True
    _OUTCOMES[trainer] = outcome
    return outcome
