"""Train from a config: python scripts/train.py --config configs/article.yaml"""

import sys

from gd_torch import signals  # the standard library only: installed before seconds of imports

if __name__ == "__main__":
    signals.install()  # Ctrl-C or SIGTERM while torch and Lightning load: nothing started, nothing to keep
    try:
        from gd_torch.command import run
    except signals.StoppedBeforeTraining as stop:
        sys.exit(signals.say(stop))
    sys.exit(run())
