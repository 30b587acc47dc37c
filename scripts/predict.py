"""Predict with a trained run: python scripts/predict.py --run RUN_DIR --input FILE.csv --output OUT.csv
(or .parquet, .feather: see gd_torch/predict.py)."""

import sys

from gd_torch.predict import main

if __name__ == "__main__":
    sys.exit(main())
