"""Train from a config: python scripts/train.py --config configs/article.yaml"""

import sys

if __name__ == "__main__":
    try:
        from gd_torch.cli import run  # torch and Lightning: seconds of imports
    except KeyboardInterrupt:  # Ctrl-C while they load: nothing started, nothing to keep
        print("Interrupted before training started.", file=sys.stderr)
        sys.exit(130)
    sys.exit(run())
