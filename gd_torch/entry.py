"""The command's entry point, for ``gd-train`` and ``scripts/train.py`` alike: the signal handlers go in
first, while torch and Lightning load (seconds), then the command runs.

This module imports the standard library and gd_torch's stdlib-only modules: the installed ``gd-train`` imports
it before anything heavy, as the script does.
"""

from gd_torch import pipes, signals


def main() -> int:
    signals.install()  # a signal while torch and Lightning load: nothing started, nothing to keep
    pipes.keep_going_when_closed()  # `... | head`: the printing stops, the run goes on
    try:
        from gd_torch.command import run
    except signals.Stopped as stop:
        return signals.say(stop)
    return run()
