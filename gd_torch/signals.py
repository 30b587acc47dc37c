"""Ctrl-C and SIGTERM, from the command's first line to its last.

Until training starts (the imports, the config's checks, the data, the curvature of a large model), a
signal ends the command at once: nothing has trained, so nothing is kept (a run directory already
claimed is taken back), and one line says so; exit code 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
Once training has started, :class:`gd_torch.stopping.GracefulInterrupt` takes over: the run ends
after the step in progress, with its summary and a checkpoint to resume from.

Only the standard library here: the handlers are installed before torch and Lightning load.
"""

import os
import signal
import sys

REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + the signal's number, as a shell reports it
EXIT_CODES = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


class StoppedBeforeTraining(BaseException):
    """A signal before the first step. A BaseException, as KeyboardInterrupt is, so that no
    ``except Exception`` on its way out takes it for a failure of the model or the data."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{REASONS[signum]} before training started")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.signum]

    @property
    def line(self) -> str:
        return f"{REASONS[self.signum].capitalize()} before training started."


def stop_at_once(signum: int, frame) -> None:
    raise StoppedBeforeTraining(signum)


def install() -> None:
    """From now until training starts, SIGINT and SIGTERM raise :class:`StoppedBeforeTraining`."""
    for signum in REASONS:
        signal.signal(signum, stop_at_once)


def ignore() -> None:
    """The outcome is decided and said: a signal while the interpreter shuts down must not turn it
    into a kill (or into a traceback half-way through the exit)."""
    for signum in REASONS:
        signal.signal(signum, signal.SIG_IGN)


def say(stop: StoppedBeforeTraining) -> int:
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
