"""Ctrl-C, SIGTERM and a closed terminal (SIGHUP), from the command's first line to its last.

Until training starts (the imports, the config's checks, the data, the curvature of a large model), a
signal ends the command at once: nothing has trained, so nothing is kept (a run directory already
claimed is taken back), and one line says so; exit code 130 for Ctrl-C (SIGINT), 143 for SIGTERM,
129 for SIGHUP (the terminal or the SSH connection the run was started from closed).
Once training has started, :class:`gd_torch.stopping.GracefulInterrupt` takes over: the run ends
after the step in progress, with its summary and a checkpoint to resume from.

Only the standard library here: the handlers are installed before torch and Lightning load.
"""

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Each signal's stop_reason, and the word the console says it with. SIGHUP is not on Windows.
REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
WORDS = {"interrupted": "Interrupted", "terminated": "Terminated", "hangup": "Hung up"}
EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_HANGUP = 130, 143, 129  # 128 + the signal's number, as a shell says
EXIT_CODES = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}
if hasattr(signal, "SIGHUP"):
    REASONS[signal.SIGHUP] = "hangup"
    EXIT_CODES[signal.SIGHUP] = EXIT_HANGUP


class Stopped(BaseException):
    """A signal outside training, which ends the command at once. A BaseException, as KeyboardInterrupt
    is, so that no ``except Exception`` on its way out takes it for a failure of the model or the data."""

    when = ""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{REASONS[signum]} {self.when}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.signum]

    @property
    def line(self) -> str:
        return f"{WORDS[REASONS[self.signum]]} {self.when}."


class StoppedBeforeTraining(Stopped):
    """Before the first step: nothing trained, nothing kept."""

    when = "before training started"


class StoppedAfterTraining(Stopped):
    """Once training has ended: the run's outcome and files stand as they were written."""

    when = "after training ended"


def stop_at_once(signum: int, frame) -> None:
    raise StoppedBeforeTraining(signum)


def stop_after_training(signum: int, frame) -> None:
    raise StoppedAfterTraining(signum)


def install() -> None:
    """From now until training starts, SIGINT, SIGTERM and SIGHUP raise :class:`StoppedBeforeTraining`."""
    for signum in REASONS:
        signal.signal(signum, stop_at_once)


def after_training(previous: object) -> object:
    """The handler to put back once training has ended, in place of ``previous`` (the one from before
    training): the command's "before training" one becomes its "after training" one; any other (a
    notebook's, the interpreter's) stays."""
    return stop_after_training if previous is stop_at_once else previous


@contextmanager
def deferred() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP held until the block ends (then handled as they would have been): for steps
    that must not be cut between two halves, like making a run directory and recording that it was
    made. In the main thread only (elsewhere signals are not delivered: nothing to hold)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in REASONS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for signum in received[:1]:
        signal.raise_signal(signum)  # to the handler now in place


def ignore() -> None:
    """The outcome is decided and said: a signal while the interpreter shuts down must not turn it
    into a kill (or into a traceback half-way through the exit)."""
    for signum in REASONS:
        signal.signal(signum, signal.SIG_IGN)


def say(stop: Stopped) -> int:
    """The one line, from the first process only (the others of a DDP run get the same signal), and
    the exit code."""
    if is_rank_zero():
        print(stop.line, file=sys.stderr, flush=True)
    return stop.exit_code


def is_rank_zero() -> bool:
    """Whether this is the first process of the job, from the variables every launcher sets (torchrun,
    Lightning's own launcher, SLURM), as Lightning itself reads them; True for a single process."""
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return os.environ[name] == "0"
    return True
