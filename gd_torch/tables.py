"""Reading a table's columns from a CSV file, every problem said with the file, the line and the column."""

import csv
import math
from pathlib import Path


def read_columns(path: Path, x_columns: list[str], y_column: str | None, key: str):
    """The named columns of a CSV file with a header row, every cell checked to be a finite number:
    ``(rows of x, y)``, or ``(rows of x, None)`` without ``y_column``. Errors name ``key``, the file,
    the line and the column."""
    if not path.is_file():
        raise ValueError(f"{key}: no such file: {path}")
    with path.open(newline="") as file:
        rows = csv.reader(file)
        header = [name.strip() for name in next(rows, [])]
        if not header:
            raise ValueError(f"{key}: {path} is empty; it needs a header row naming its columns")
        wanted = (("x", x_columns), ("y", [y_column] if y_column is not None else []))
        for column_key, columns in wanted:
            missing = [c for c in columns if c not in header]
            if missing:
                where = column_key if key == "path" else key
                raise ValueError(f"{where}: {path} has no column {missing[0]!r}; it has {', '.join(header)}")
        x_at = [header.index(c) for c in x_columns]
        xs, ys = [], []
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{key}: {path} line {line} has {len(row)} cells; the header has {len(header)}")
            xs.append([_number(key, path, line, header[i], row[i]) for i in x_at])
            if y_column is not None:
                ys.append(_number(key, path, line, y_column, row[header.index(y_column)]))
    if not xs:
        raise ValueError(f"{key}: {path} has a header but no data rows")
    return xs, (ys if y_column is not None else None)


def _number(key: str, path: Path, line: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{key}: {path} line {line}, column {column!r}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{key}: {path} line {line}, column {column!r}: {cell!r} is not a finite number")
    return value
