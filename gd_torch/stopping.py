"""The rules that stop training: the article's step that became very small, divergence, and Ctrl-C,
SIGTERM or a closed terminal (the step budget is Lightning's ``max_steps``).

Each is a :class:`gd_torch.outcome.StopRule`: it records its reason and sets ``trainer.should_stop``;
Lightning then ends the run cleanly after the current step (logs, checkpoint, summary), and
:func:`gd_torch.outcome.outcome_of` reports the reason. Each decision is a function of values that
are the same on every process of a DDP run (the loss over all of them, the synchronised parameters),
except a signal, which is shared over the process group at every step.
"""

import math
import signal
import threading

import lightning.pytorch as pl
import torch

from gd_torch import signals
from gd_torch.module import step_loss
from gd_torch.outcome import StopRule


def completed_step(trainer: pl.Trainer) -> int:
    """Index k of the optimizer update that just ran (``global_step`` counts them from 1)."""
    return trainer.global_step - 1


def largest_change(after: list[torch.Tensor], before: list[torch.Tensor]) -> torch.Tensor:
    """The step size: the largest change of any parameter value between two snapshots, on the device."""
    return torch.stack([(a.detach() - b).abs().max() for a, b in zip(after, before, strict=True)]).max()


class Convergence(StopRule):
    """The article's "step size becomes very small": stops once no parameter moves by ``tolerance``.

    Args:
        tolerance: Stop when the largest change of any parameter in one step is below this; 0 = off.
    """

    def __init__(self, tolerance: float = 0.0) -> None:
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f"tolerance must be a finite number >= 0 (0 = off), got {tolerance}")
        self.tolerance = tolerance

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.tolerance:
            self._before = [p.detach().clone() for p in pl_module.parameters() if p.requires_grad]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.tolerance:
            return
        after = [p for p in pl_module.parameters() if p.requires_grad]
        if largest_change(after, self._before).item() < self.tolerance:
            self.stop(trainer, "converged")


class Divergence(StopRule):
    """Stops training when the loss is NaN or infinite, or grows ``max_growth`` times.

    The run ends ``diverged`` (exit code 1); the console's error line names the step and, when the
    curvature is known, the stable learning rate.

    Descent that works never climbs more than ``max_growth`` times the loss of the first step. On the
    CPU every step is checked as it ends. On a GPU, reading the loss would make the host wait for the
    device at every step, so the losses are checked ``check_every`` steps at a time (and at the last
    step): the error still names the first bad step, a few steps later.

    Args:
        max_growth: Diverged when the loss exceeds this many times the first step's loss, > 1.
        check_every: On a GPU, read the losses this many steps at a time, >= 1.
    """

    def __init__(self, max_growth: float = 1e4, check_every: int = 50) -> None:
        if not max_growth > 1:
            raise ValueError(f"max_growth must be > 1, got {max_growth}")
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        self.max_growth = max_growth
        self.check_every = check_every
        self._first_loss: float | None = None
        self._pending: list[tuple[int, torch.Tensor]] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self._on_cpu = pl_module.device.type == "cpu"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stopping_reason:
            return  # said once, at the first bad step
        loss = step_loss(outputs)
        if self._on_cpu:  # reading the value costs nothing here
            self._check(trainer, pl_module, [completed_step(trainer)], [loss.item()])
            return
        self._pending.append((completed_step(trainer), loss))
        if len(self._pending) >= self.check_every or trainer.should_stop or trainer.global_step >= trainer.max_steps:
            losses = torch.stack([loss for _, loss in self._pending]).tolist()  # one device sync
            steps = [step for step, _ in self._pending]
            self._pending.clear()
            self._check(trainer, pl_module, steps, losses)

    def _check(self, trainer, pl_module, steps: list[int], losses: list[float]) -> None:
        for step, loss in zip(steps, losses, strict=True):
            if self._first_loss is None:
                self._first_loss = loss
            if not math.isfinite(loss):
                why = f"{loss:.6g} (not finite)"
            elif self._first_loss > 0 and loss > self.max_growth * self._first_loss:
                why = f"{loss:.6g} (over {self.max_growth:g} x the first step's loss)"
            else:
                continue
            self.stop(trainer, "diverged", self._message(step, why, trainer, pl_module))
            return

    @staticmethod
    def _message(step: int, loss: str, trainer, pl_module) -> str:
        """Where it blew up and, when the curvature is known, the learning rate that would not have."""
        message = f"training diverged at step {step}: loss = {loss}."
        stability = getattr(pl_module, "stability", None)  # gd_torch.stability.Stability, from setup
        bound = stability.stable_learning_rate if stability is not None else None
        if bound is None:
            return message
        where = "" if stability.spectrum.quadratic else " near the initial parameters"
        optimizer = stability.optimizer
        how = "gradient descent" if not (optimizer.momentum or optimizer.weight_decay) else "SGD with these settings"
        return message + (
            f" The loss Hessian's largest eigenvalue is {stability.spectrum.max_eigenvalue:.6g}{where}: for this data"
            f" with reduction '{pl_module.reduction}', {how} converges only for learning_rate < {bound:.6g};"
            f" got {stability.learning_rate:g}."
        )

    # The first loss travels in checkpoints: a resumed run keeps the same bound.
    def state_dict(self) -> dict:
        return {"first_loss": self._first_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self._first_loss = state_dict["first_loss"]


class GracefulInterrupt(StopRule):
    """Ctrl-C (SIGINT), SIGTERM and SIGHUP end training after the step in progress, as a normal end:
    logs, summary and a checkpoint of a completed step, so a resumed run continues exactly. SIGTERM is
    what ``timeout``, SLURM and Kubernetes send before stopping a job (``stop_reason: "terminated"``,
    exit code 143); SIGHUP, what a closed terminal or SSH connection sends (``"hangup"``, 129: the
    console is gone, gd_torch.pipes then writes nowhere); a second Ctrl-C stops at once (the checkpoint
    is then the last whole one).

    From the first step on, that is: before it, the command's own handlers (:mod:`gd_torch.signals`)
    end the set-up at once, and they are back once the run is over.

    Under DDP the request is shared over the process group at every step, so a signal to any process
    stops all of them after the same step.
    """

    REASONS = signals.REASONS  # the stop_reason of each signal, the same before training and during it

    def __init__(self) -> None:
        self._requested: str | None = None
        self._previous: dict[int, object] = {}

    def setup(self, trainer, pl_module, stage: str) -> None:
        # The handlers to put back at the end: those from before Lightning's own (it adds a SIGTERM
        # handler of its own just before training, which this one replaces while training runs).
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.getsignal(signum) for signum in self.REASONS}

    def on_train_start(self, trainer, pl_module) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in self.REASONS:
                signal.signal(signum, self._request_stop)

    def _request_stop(self, signum, frame) -> None:
        self._requested = self._requested or self.REASONS[signum]
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C interrupts at once

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        requested = self._requested
        # Under DDP one process's signal stops them all, after the same step.
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(requested is not None, all=False):
            requested = requested or "terminated"
        if requested:
            self.stop(trainer, requested)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for signum, previous in self._previous.items():
            if previous is not None:  # None: a handler not installed from Python, left as it is
                signal.signal(signum, signals.after_training(previous))  # the command's: "after training"
        self._previous.clear()
