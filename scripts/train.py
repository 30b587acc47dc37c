"""Train from a config: python scripts/train.py --config configs/article.yaml"""

import sys

from gd_torch.cli import run

if __name__ == "__main__":
    sys.exit(run())
