"""Train from a config: python scripts/train.py --config configs/article.yaml"""

import sys

from gd_torch.entry import main  # the standard library only: the signal handlers go in before torch loads

if __name__ == "__main__":
    sys.exit(main())
