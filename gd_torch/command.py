"""The command: ``python scripts/train.py --config configs/article.yaml [--section.key VALUE ...]``.

``main`` parses and checks the command line (:mod:`gd_torch.cli`), trains, and returns the exit code:
0 trained, 1 training failed (or diverged), 2 the config or the data is invalid (nothing trained, no
run directory), 130 interrupted by Ctrl-C, 143 terminated, 129 hung up (the terminal closed). ``run``
is the same in a process of its own, with the signal handlers of :mod:`gd_torch.signals` from its
first line.
"""

import gc
import sys
import traceback
from pathlib import Path

import torch
from lightning.pytorch import Trainer

from gd_torch import signals
from gd_torch.adapters.lightning import LastCheckpoint
from gd_torch.cli import GradientDescentCLI
from gd_torch.errors import ConfigError
from gd_torch.outcome import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    Outcome,
    decided,
    failure_message,
    outcome_of,
)
from gd_torch.quiet import held_back_until_valid, silence_inapplicable_warnings
from gd_torch.signals import WORDS


def run() -> int:
    """The command's entry point (``scripts/train.py``, ``gd-train``): ``main()`` in a process of its own."""
    signals.install()  # already done by scripts/train.py before its imports; gd-train comes here first
    # Importing torch and Lightning leaves millions of long-lived objects, and every garbage
    # collection after that walks them all: ~0.6 s over a run of the article. None of them is
    # garbage, so they are moved out of the collector's sight. A longer-lived process that calls
    # main() itself, like the tests, keeps its collector as it is.
    gc.freeze()
    try:
        code = main()
    except signals.Stopped as stop:
        code = signals.say(stop)
    except KeyboardInterrupt:  # a second Ctrl-C after the run's own ending: it has said all
        code = EXIT_INTERRUPTED
    signals.ignore()
    return code


def main(argv: list[str] | None = None) -> int:
    """The command: parse and check ``argv`` (the command line when None), train, return the exit code."""
    try:
        cli = build(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    return train(cli)


def build(argv: list[str] | None) -> GradientDescentCLI:
    """The config parsed and every object built and checked, the run directory claimed; nothing
    trained. Raises :class:`ConfigError` for invalid input."""
    silence_inapplicable_warnings()
    with held_back_until_valid():
        return GradientDescentCLI(argv)


def train(cli: GradientDescentCLI, raise_invalid: bool = False) -> int:
    """Fit what ``build`` made and return the exit code; errors are reported on stderr. A setting found
    invalid only as the run sets up (``curvature.enforce``) is exit code 2, or, with ``raise_invalid``
    (``gd_torch.fit``), its :class:`ConfigError` raised, the run directory taken back either way."""
    trainer = cli.trainer
    try:
        # weights_only: Lightning reads the checkpoint again to resume; a file that carries code is refused.
        trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.ckpt_path, weights_only=True)
    except signals.Stopped as stop:
        if not decided(trainer):  # during the set-up: nothing trained, nothing to keep
            cli.take_back_run_directories()
            stop_other_processes(trainer, stop.signum)
            raise
        # Otherwise it came once the run had been summed up: the outcome stands.
    except ConfigError as error:  # found invalid only as the run set up (curvature.enforce)
        cli.take_back_run_directories()
        if raise_invalid:
            raise
        if trainer.is_global_zero:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except SystemExit:
        # Lightning turns a KeyboardInterrupt (a second Ctrl-C) into exit(1) after its cleanup; the
        # checkpoint is the last whole one (each write is renamed into place once complete).
        if trainer.interrupted:
            if trainer.is_global_zero:
                say_how_to_resume(trainer, "interrupted")
            return EXIT_INTERRUPTED
        raise
    except Exception as error:
        # The exception is what happened, even when a callback had already recorded an outcome (an
        # error in a callback's own end of the run, after the summary was written).
        traceback.print_exc()
        print(f"error: {failure_message(error)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        end_process_group()
    outcome = outcome_of(trainer, cli.model)
    if trainer.is_global_zero:
        say_how_it_ended(trainer, outcome)
    return outcome.exit_code


def say_how_it_ended(trainer: Trainer, outcome: Outcome) -> None:
    """The divergence's error line, or the command that resumes an interrupted run."""
    if outcome.reason == "diverged":
        print(f"error: {outcome.message}", file=sys.stderr)
    elif outcome.reason in WORDS:  # a signal's
        say_how_to_resume(trainer, outcome.reason)


def say_how_to_resume(trainer: Trainer, reason: str) -> None:
    """``Interrupted. Resume with: ...``, from the run's own last.ckpt (its LastCheckpoint, found by type:
    a config's own ModelCheckpoint may come first in the callbacks), when one was written whole."""
    saver = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
    last = saver.last_model_path if saver is not None else ""
    if last and Path(last).is_file():
        # <run directory>/checkpoints/last.ckpt (asking the trainer would be a broadcast, and the
        # processes' group is closed by now)
        config = Path(last).parent.parent / "config.yaml"
        print(f"{WORDS[reason]}. Resume with: python scripts/train.py --config {config} --ckpt_path {last}")


def stop_other_processes(trainer: Trainer, signum: int) -> None:
    """The signal reached this process alone (``kill PID``): the processes Lightning started for the
    other ranks get it too, rather than waiting for this one in a collective."""
    launcher = trainer.strategy.launcher
    if launcher is not None and trainer.is_global_zero:
        launcher.kill(signum)


def end_process_group() -> None:
    """Close the processes' connection (DDP on gloo) while the interpreter is whole. Lightning closes it
    only for NCCL; a gloo group left to the interpreter's shutdown can abort the process
    ("terminate called without an active exception") when a worker thread releases its last tensors."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
