"""Reading a table's columns from a CSV file, every problem said with the file, the line and the column.

A missing cell is an empty one or one of the spellings tables use for "no value" (``NA``, ``nan``,
``null``, ``None``, ``N/A``, ``#N/A``, any case). ``missing: error`` names every bad cell (up to
ten) in one error; ``missing: drop`` drops the rows with a missing cell and says how many.
A categorical column's cells are kept as text (stripped); every other cell must be a finite number.
"""

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Missing = Literal["error", "drop"]
MISSING = {"", "na", "n/a", "#n/a", "nan", "null", "none"}
NAMED = 10  # bad cells named in one error line, at most
MISSING_CELL = "is missing"
Cell = float | str


@dataclass
class Table:
    """The rows read (cells in the order of ``columns``), the file line of each, and how many rows
    were dropped for a missing cell (``missing: drop``)."""

    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    dropped: int = 0

    @property
    def read(self) -> int:
        return len(self.rows) + self.dropped

    def column(self, name: str) -> list[Cell]:
        at = self.columns.index(name)
        return [row[at] for row in self.rows]


def read_header(path: Path, key: str) -> list[str]:
    """The column names of a CSV file's header row."""
    if not path.is_file():
        raise ValueError(f"{key}: no such file: {path}")
    with path.open(newline="") as file:
        header = [name.strip() for name in next(csv.reader(file), [])]
    if not header:
        raise ValueError(f"{key}: {path} is empty; it needs a header row naming its columns")
    return header


def read_columns(
    path: Path,
    columns: dict[str, list[str]],
    key: str,
    missing: Missing = "error",
    categorical: frozenset[str] = frozenset(),
) -> Table:
    """The named columns of a CSV file with a header row. ``columns`` maps the config key that names
    them (``x``, ``y``) to the names, for the error that says one is absent. Every cell must be a
    finite number, except in ``categorical`` columns (text). Errors name ``key``, the file, the lines
    and the columns."""
    header = read_header(path, key)
    for column_key, names in columns.items():
        absent = [c for c in names if c not in header]
        if absent:
            where = column_key if key == "path" else key
            raise ValueError(f"{where}: {path} has no column {absent[0]!r}; it has {', '.join(header)}")
    wanted = [name for names in columns.values() for name in names]
    at = [header.index(c) for c in wanted]
    table = Table(wanted)
    bad: list[str] = []
    with path.open(newline="") as file:
        rows = csv.reader(file)
        next(rows)
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{key}: {path} line {line} has {len(row)} cells; the header has {len(header)}")
            values, problems, gaps = [], [], False
            for column, i in zip(wanted, at, strict=True):
                value, problem = _cell(row[i], column in categorical)
                if problem == MISSING_CELL and missing == "drop":
                    gaps = True
                elif problem:
                    problems.append(f"line {line}, column {column!r}: {row[i]!r} {problem}")
                values.append(value)
            bad += problems
            if gaps and not problems:
                table.dropped += 1
            elif not problems:
                table.rows.append(values)
                table.lines.append(line)
    if bad:
        shown = "; ".join(bad[:NAMED]) + (f"; and {len(bad) - NAMED} more" if len(bad) > NAMED else "")
        cells = f"{len(bad)} bad cells" if len(bad) > 1 else "a bad cell"
        hint = " (missing: drop drops the rows with a missing cell)" if any(MISSING_CELL in b for b in bad) else ""
        raise ValueError(f"{key}: {path} has {cells}: {shown}{hint}")
    if not table.rows:
        if table.dropped:
            raise ValueError(f"{key}: {path} has no rows left once the {table.dropped} with a missing cell are dropped")
        raise ValueError(f"{key}: {path} has a header but no data rows")
    return table


def _cell(cell: str, text: bool) -> tuple[Cell, str | None]:
    """The cell's value, and what is wrong with it (None: nothing)."""
    if cell.strip().lower() in MISSING:
        return math.nan, MISSING_CELL
    if text:
        return cell.strip(), None
    try:
        value = float(cell)
    except ValueError:
        return math.nan, "is not a number"
    if not math.isfinite(value):
        return value, "is not a finite number"
    return value, None
