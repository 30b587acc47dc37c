"""Writes data/houses.csv, the table of configs/real.yaml: 600 made-up house sales, six features on
scales from a few rooms to tens of thousands of euros of income, and a price that is linear in them
plus noise. Pure Python with a fixed seed, so the file is the same wherever it is made again:

    python scripts/make_houses.py            # writes data/houses.csv
"""

import csv
import math
import random
import sys
from pathlib import Path

ROWS = 600
COLUMNS = ["area_m2", "rooms", "age_years", "distance_km", "lot_m2", "income_eur", "price_keur"]
# price_keur = 40 + 2.1 area + 12 rooms - 0.8 age - 4.5 distance + 0.01 lot + 0.0025 income + noise
INTERCEPT = 40.0
WEIGHTS = [2.1, 12.0, -0.8, -4.5, 0.01, 0.0025]
NOISE_STD = 15.0


def house(rng: random.Random) -> list[float]:
    area = round(rng.uniform(30, 250), 1)
    rooms = min(8, max(1, round(area / 35 + rng.gauss(0, 0.7))))
    age = rng.randint(0, 100)
    distance = round(math.exp(rng.uniform(math.log(0.3), math.log(40))), 2)
    lot = round(rng.uniform(0, 5000))
    income = int(round(rng.uniform(18_000, 120_000), -2))
    features = [area, rooms, age, distance, lot, income]
    price = INTERCEPT + sum(w * f for w, f in zip(WEIGHTS, features, strict=True)) + rng.gauss(0, NOISE_STD)
    return [*features, round(price, 2)]


def main(path: Path) -> None:
    rng = random.Random(2026)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        writer.writerows(house(rng) for _ in range(ROWS))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "data" / "houses.csv")
