"""Writes data/digits.csv, the 8x8 handwritten digits that scikit-learn ships (1,797 images of 10
classes, from the UCI "Optical Recognition of Handwritten Digits" set), once:

    pip install -e ".[data]" && python scripts/export_digits.py

One row per image: 64 pixel columns ``p<row><column>`` (ink from 0 to 1, row by row: scikit-learn's
0-16 divided by 16, exact in binary) and the class ``digit`` (0-9), in scikit-learn's order.
configs/digits.yaml trains on it.
"""

import csv
from pathlib import Path

from sklearn.datasets import load_digits

OUTPUT = Path(__file__).resolve().parents[1] / "data" / "digits.csv"


def main() -> None:
    digits = load_digits()
    header = [f"p{row}{column}" for row in range(8) for column in range(8)] + ["digit"]
    with OUTPUT.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for pixels, digit in zip(digits.data, digits.target, strict=True):
            writer.writerow([*(f"{v / 16:g}" for v in pixels), int(digit)])
    print(f"Wrote {len(digits.target)} images to {OUTPUT}")


if __name__ == "__main__":
    main()
