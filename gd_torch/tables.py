"""Reading a table's columns from a CSV file, every problem said with the file, the line and the column.

A missing cell is an empty one or one of the spellings tables use for "no value" (``NA``, ``nan``,
``null``, ``None``, ``N/A``, ``#N/A``, any case). ``missing: error`` names every bad cell (up to
ten) in one error; ``missing: drop`` drops the rows with a missing cell and says how many.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Missing = Literal["error", "drop"]
MISSING = {"", "na", "n/a", "#n/a", "nan", "null", "none"}
NAMED = 10  # bad cells named in one error line, at most
MISSING_CELL = "is missing"


@dataclass
class Columns:
    """The rows read, and how many were dropped for a missing cell (``missing: drop``)."""

    x: list[list[float]]
    y: list[float] | None
    dropped: int = 0

    @property
    def read(self) -> int:
        return len(self.x) + self.dropped


def read_columns(
    path: Path, x_columns: list[str], y_column: str | None, key: str, missing: Missing = "error"
) -> Columns:
    """The named columns of a CSV file with a header row, every cell checked to be a finite number
    (the target too, unless ``y_column`` is None). Errors name ``key``, the file, the lines and the
    columns."""
    if not path.is_file():
        raise ValueError(f"{key}: no such file: {path}")
    with path.open(newline="") as file:
        rows = csv.reader(file)
        header = [name.strip() for name in next(rows, [])]
        if not header:
            raise ValueError(f"{key}: {path} is empty; it needs a header row naming its columns")
        y_columns = [y_column] if y_column is not None else []
        for column_key, columns in (("x", x_columns), ("y", y_columns)):
            absent = [c for c in columns if c not in header]
            if absent:
                where = column_key if key == "path" else key
                raise ValueError(f"{where}: {path} has no column {absent[0]!r}; it has {', '.join(header)}")
        columns = [*x_columns, *y_columns]
        at = [header.index(c) for c in columns]
        table = Columns([], [] if y_column is not None else None)
        bad: list[str] = []
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{key}: {path} line {line} has {len(row)} cells; the header has {len(header)}")
            values, problems, gaps = [], [], False
            for column, i in zip(columns, at, strict=True):
                value, problem = _number(row[i])
                if problem == MISSING_CELL and missing == "drop":
                    gaps = True
                elif problem:
                    problems.append(f"line {line}, column {column!r}: {row[i]!r} {problem}")
                values.append(value)
            bad += problems
            if gaps and not problems:
                table.dropped += 1
            elif not problems:
                table.x.append(values[: len(x_columns)])
                if table.y is not None:
                    table.y.append(values[-1])
    if bad:
        shown = "; ".join(bad[:NAMED]) + (f"; and {len(bad) - NAMED} more" if len(bad) > NAMED else "")
        cells = f"{len(bad)} bad cells" if len(bad) > 1 else "a bad cell"
        hint = " (missing: drop drops the rows with a missing cell)" if any(MISSING_CELL in b for b in bad) else ""
        raise ValueError(f"{key}: {path} has {cells}: {shown}{hint}")
    if not table.x:
        if table.dropped:
            raise ValueError(f"{key}: {path} has no rows left once the {table.dropped} with a missing cell are dropped")
        raise ValueError(f"{key}: {path} has a header but no data rows")
    return table


def _number(cell: str) -> tuple[float, str | None]:
    """The cell's value, and what is wrong with it (None: nothing)."""
    if cell.strip().lower() in MISSING:
        return math.nan, MISSING_CELL
    try:
        value = float(cell)
    except ValueError:
        return math.nan, "is not a number"
    if not math.isfinite(value):
        return value, "is not a finite number"
    return value, None
