"""Reading a table's columns through Arrow, every problem said with the file, the line (or row) and the column.

A table comes from a file, by its extension, or from memory (gd_torch.sources), a batch at a time,
numbers straight to float32 (float64 for a run in float64: :func:`read_as`) and copied once into one block:
no Python object is made per cell. A bad cell is found afterwards from a column's null mask, its
NaNs and infinities, or a failed conversion, and only the cells an error names are looked at one by
one (a CSV file's line numbers are counted then, not on the way).

A missing cell is a null, a NaN, an empty cell or one of the spellings tables use for "no value"
(``NA``, ``nan``, ``null``, ``None``, ``N/A``, ``#N/A``, any case). ``missing: error`` names every bad
cell (up to ten) in one error; ``missing: drop`` drops the rows with a missing cell and says how many.
A categorical column's cells are kept as text (stripped); every other cell must be a finite number.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gd_torch.sources import (  # noqa: F401 (file_source and memory_source: read from here too)
    BATCH,
    MISSING,
    ConversionFailed,
    CSVFile,
    Source,
    TableError,
    file_source,
    memory_source,
)  # fmt: skip

Missing = Literal["error", "drop"]
DROP_HINT = "missing: drop drops the rows with a missing cell"  # what an error with a missing cell ends with
NAMED = 10  # bad cells named in one error line, at most
MISSING_CELL = "is missing"
# The dtype a table's numbers are read into: float32, or float64 while the command builds a run in
# float64 (--trainer.precision 64-true), so that a float64 or large integer column keeps every digit.
READ_AS: ContextVar[type] = ContextVar("gd_torch_read_as", default=np.float32)


@contextmanager
def read_as(dtype: type) -> Iterator[None]:
    """Tables made in this block read their numbers into ``dtype`` (np.float32 or np.float64)."""
    token = READ_AS.set(dtype)
    try:
        yield
    finally:
        READ_AS.reset(token)


@dataclass
class Table:
    """The checked columns of a table: a numeric column as a float32 NumPy array, a categorical one
    as Arrow text (stripped); which of the source's rows they are (``kept``, None = all of them, for
    naming a row) and how many were dropped for a missing cell (``missing: drop``)."""

    source: "Source"
    columns: dict[str, Any]
    rows: int
    kept: np.ndarray | None = None
    dropped: int = 0

    @property
    def read(self) -> int:
        return self.rows + self.dropped

    def where(self, rows: np.ndarray) -> list[str]:
        """Where these of the table's rows are in the source: ``line 12`` of a CSV file, else ``row 11``."""
        return self.source.where(rows if self.kept is None else self.kept[rows])


def read_header(source: Source, key: str) -> list[str]:
    """The column names of a table."""
    try:
        header = source.header()
    except TableError as error:
        raise TableError(f"{key}: {error}") from None
    if not header:
        raise TableError(f"{key}: {source.name} is empty; it needs a header row naming its columns")
    return header


def read_columns(
    source: Source,
    columns: dict[str, list[str]],
    key: str,
    missing: Missing = "error",
    categorical: frozenset[str] = frozenset(),
    missing_hint: str = DROP_HINT,
    dtype: type = np.float32,
) -> Table:
    """The named columns of a table, checked, numbers as ``dtype``. ``columns`` maps the config key that
    names them (``x``, ``y``) to the names, for the error that says one is absent. Every cell must be a finite number,
    except in ``categorical`` columns (text). Errors name ``key``, the source, the rows and the columns;
    one with a missing cell ends with ``missing_hint`` (by default, how ``missing: drop`` leaves its row
    out)."""
    header = read_header(source, key)
    for column_key, names in columns.items():
        absent = [c for c in names if c not in header]
        if absent:
            where = column_key if key == "path" else key
            raise TableError(f"{where}: {source.name} has no column {absent[0]!r}; it has {', '.join(header)}")
    wanted = list(dict.fromkeys(name for names in columns.values() for name in names))
    try:
        return _gathered(source, key, wanted, categorical, missing, missing_hint, dtype)
    except ConversionFailed:  # a cell that is no number: every cell of every column looked at as text
        try:
            arrow = source.read_text(wanted)
        except TableError as error:
            raise TableError(f"{key}: {error}") from None
    if arrow.num_rows == 0:
        raise TableError(f"{key}: {source.name} has a header but no data rows")
    checked = {name: check_column(source, key, name, arrow.column(name), name in categorical, dtype) for name in wanted}
    return _kept(source, key, checked, arrow.num_rows, missing, missing_hint)


def _gathered(
    source: Source,
    key: str,
    wanted: list[str],
    categorical: frozenset[str],
    missing: Missing,
    missing_hint: str,
    dtype: type,
) -> Table:
    """The columns read a batch at a time, each batch checked and its numbers copied into one ``dtype``
    block (columns, rows) sized from the table's row count (a CSV's estimated from its first bytes),
    so that the table is never held twice: the block and one batch."""
    numbers = [name for name in wanted if name not in categorical]
    capacity = source.count() or source.estimate()
    block = np.empty((len(numbers), capacity), dtype=dtype)
    texts: dict[str, list] = {name: [] for name in categorical if name in wanted}
    gaps, shown, count, missing_named, at = [], [], 0, False, 0
    for part in _keyed(source.batches(wanted, categorical, dtype), key):
        n = part.num_rows
        checked = {
            name: check_column(source, key, name, part.column(name), name in categorical, dtype) for name in wanted
        }
        bad = bad_cells(checked, missing)
        if bad:
            count += len(bad)
            missing_named |= any(problem == MISSING_CELL for *_, problem in bad)
            if len(shown) < NAMED:
                shown += described(source, checked, bad[: NAMED - len(shown)], at)
        if count:
            at += n
            continue  # only the errors are wanted now
        if missing == "drop":
            gaps.append(gaps_of(checked, n))
        if at + n > block.shape[1]:  # an estimate that fell short: grow by half
            block = np.resize(block, (len(numbers), max(at + n, block.shape[1] * 3 // 2)))
        for j, name in enumerate(numbers):
            copy_into(block[j, at : at + n], checked[name].values)
        for name in texts:
            texts[name] += checked[name].values.chunks
        at += n
        del part, checked
        pa.default_memory_pool().release_unused()  # the batch's buffers back to the system, not kept
    pa.default_memory_pool().release_unused()
    if count:
        raise TableError(f"{key}: {source.name} has {summary(shown, count, missing_named, missing_hint)}")
    if at == 0:
        raise TableError(f"{key}: {source.name} has a header but no data rows")
    gap = np.concatenate(gaps) if gaps else np.zeros(at, dtype=bool)
    kept = np.flatnonzero(~gap) if gap.any() else None
    if kept is not None and len(kept) == 0:
        raise TableError(f"{key}: {source.name} has no rows left once the {at} with a missing cell are dropped")
    block = block[:, :at] if kept is None else block[:, kept]  # a view, or the rows kept (one copy)
    values: dict[str, Any] = {name: block[j] for j, name in enumerate(numbers)}
    for name, chunks in texts.items():
        cells = pa.chunked_array([chunk.cast(pa.string()) for chunk in chunks], type=pa.string())
        values[name] = cells if kept is None else cells.take(pa.array(kept))
    values = {name: values[name] for name in wanted}
    return Table(source, values, at if kept is None else len(kept), kept, 0 if kept is None else at - len(kept))


def _keyed(batches: Iterator[pa.Table], key: str) -> Iterator[pa.Table]:
    """The batches, a source's error (a file that cannot be read) named with the config key."""
    try:
        yield from batches
    except TableError as error:
        raise TableError(f"{key}: {error}") from None


def copy_into(target: np.ndarray, values: Any) -> None:
    """An Arrow column's (or a NumPy array's) values into ``target``, chunk by chunk."""
    if isinstance(values, np.ndarray):
        target[:] = values
        return
    at = 0
    for chunk in values.chunks:
        view = chunk.to_numpy(zero_copy_only=False)
        target[at : at + len(view)] = view
        at += len(view)


@dataclass
class Column:
    """One column checked: its values, where a cell is missing, and the other bad cells (row -> problem)."""

    values: Any
    missing: np.ndarray
    bad: dict[int, str] = field(default_factory=dict)
    # The cells as the source has them, to name a bad one: text (shown quoted) or typed values (bare);
    # None for a CSV column read as numbers (its text is read again, only when a cell is named).
    cells: pa.ChunkedArray | None = None
    quoted: bool = True


def check_column(
    source: Source, key: str, name: str, array: pa.ChunkedArray, categorical: bool, dtype: type = np.float32
) -> Column:
    """One column's values (numbers as ``dtype``), its missing cells and its other bad cells, found from
    its buffers."""
    kind = array.type
    if pa.types.is_dictionary(kind):  # a pandas category column: its values
        array, kind = array.cast(kind.value_type), kind.value_type
    if categorical:
        text = array if pa.types.is_string(kind) or pa.types.is_large_string(kind) else pc.cast(array, pa.string())
        stripped = pc.utf8_trim_whitespace(text)
        gap = pc.or_kleene(pc.is_null(stripped), pc.is_in(pc.utf8_lower(stripped), pa.array(MISSING)))
        return Column(stripped, np.asarray(gap.fill_null(True)), cells=array, quoted=text is array)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _numbers_from_text(array, dtype)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind) or pa.types.is_null(kind)):  # fmt: skip
        raise TableError(
            f"{key}: {source.name} column {name!r} holds {kind} values, not numbers; name it in categorical"
            " to take its values as categories"
        )
    # Kept as Arrow's chunks (no copy); the masks from each chunk's values, nulls read as NaN.
    values = pc.cast(array, pa.from_numpy_dtype(dtype), safe=False)
    values = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    views = [chunk.to_numpy(zero_copy_only=False) for chunk in values.chunks]
    gap = np.concatenate([np.isnan(v) for v in views]) if views else np.zeros(0, dtype=bool)
    infinite = np.flatnonzero(np.concatenate([np.isinf(v) for v in views])) if views else np.zeros(0, dtype=np.int64)
    typed = None if isinstance(source, CSVFile) else array
    return Column(values, gap, dict.fromkeys(infinite.tolist(), "is not a finite number"), typed, quoted=False)


def _numbers_from_text(array: pa.ChunkedArray, dtype: type) -> Column:
    """A column of text that should be numbers: the slow path, taken only when a cell did not convert."""
    stripped = pc.utf8_trim_whitespace(array)
    gap = np.asarray(
        pc.or_kleene(pc.is_null(stripped), pc.is_in(pc.utf8_lower(stripped), pa.array(MISSING))).fill_null(True)
    )
    cells = stripped.to_numpy(zero_copy_only=False)
    values = np.full(len(cells), np.nan, dtype=dtype)
    bad = {}
    for row in np.flatnonzero(~gap).tolist():
        try:
            values[row] = float(cells[row])
        except ValueError:
            bad[row] = "is not a number"
            continue
        if not np.isfinite(values[row]):
            bad[row] = "is not a finite number"
    return Column(values, gap, bad, cells=array)


def bad_cells(columns: dict[str, Column], missing: Missing) -> list[tuple[int, int, str]]:
    """Every bad cell as (row, column position, problem), in row order: a missing cell is bad unless
    ``missing`` is drop."""
    return sorted(
        [(row, i, problem) for i, column in enumerate(columns.values()) for row, problem in column.bad.items()]
        + ([] if missing == "drop" else
           [(row, i, MISSING_CELL) for i, c in enumerate(columns.values()) for row in np.flatnonzero(c.missing)])
    )  # fmt: skip


def gaps_of(columns: dict[str, Column], rows: int) -> np.ndarray:
    """Which rows have a missing cell in any of the columns."""
    gaps = np.zeros(rows, dtype=bool)
    for column in columns.values():
        gaps |= column.missing
    return gaps


def _kept(
    source: Source, key: str, columns: dict[str, Column], rows: int, missing: Missing, missing_hint: str
) -> Table:
    """The rows kept (all, or those without a missing cell), or the error that names every bad cell."""
    gaps = gaps_of(columns, rows)
    bad = bad_cells(columns, missing)
    if bad:
        shown = described(source, columns, bad[:NAMED])
        missing_named = any(problem == MISSING_CELL for *_, problem in bad)
        raise TableError(f"{key}: {source.name} has {summary(shown, len(bad), missing_named, missing_hint)}")
    kept = None if not gaps.any() else np.flatnonzero(~gaps)
    if kept is not None and len(kept) == 0:
        raise TableError(f"{key}: {source.name} has no rows left once the {rows} with a missing cell are dropped")
    values = {
        name: column.values if kept is None else (column.values.take(kept) if isinstance(column.values, np.ndarray)
                                                  else column.values.take(pa.array(kept)))
        for name, column in columns.items()
    }  # fmt: skip
    return Table(source, values, rows if kept is None else len(kept), kept, int(gaps.sum()))


def summary(shown: list[str], count: int, missing_named: bool, missing_hint: str = DROP_HINT) -> str:
    """``4 bad cells: line 9, column 'x2': '' is missing; ...`` (ten named, then a count), and what to do
    about a missing cell when one is among them (``missing_hint``)."""
    more = f"; and {count - NAMED} more" if count > NAMED else ""
    cells = f"{count} bad cells" if count > 1 else "a bad cell"
    hint = f" ({missing_hint})" if missing_named and missing_hint else ""
    return f"{cells}: {'; '.join(shown)}{more}{hint}"


def described(
    source: Source, columns: dict[str, Column], shown: list[tuple[int, int, str]], first: int = 0
) -> list[str]:
    """``line 9, column 'x2': '' is missing`` for each of ``shown`` (rows counted from ``first``, the
    table's row where these columns start)."""
    names = list(columns)
    where = source.where(np.array([first + row for row, _, _ in shown]))
    texts = _cell_texts(source, columns, shown, first)
    return [
        f"{at}, column {names[i]!r}: {text} {problem}"
        for at, (_, i, problem), text in zip(where, shown, texts, strict=True)
    ]


def _cell_texts(
    source: Source, columns: dict[str, Column], shown: list[tuple[int, int, str]], first: int = 0
) -> list[str]:
    """The named cells as the source has them: text quoted (``'NA'``), a typed value bare (``null``,
    ``nan``, ``inf``)."""
    names = list(columns)
    need = list(dict.fromkeys(names[i] for _, i, _ in shown if columns[names[i]].cells is None))
    text = source.read_text(need) if need else None
    texts = []
    for row, i, _ in shown:
        column = columns[names[i]]
        if column.cells is not None:
            cell, quoted = column.cells[row].as_py(), column.quoted
        else:  # the whole file's text: rows counted from its start
            cell, quoted = text.column(names[i])[first + row].as_py(), True
        texts.append("null" if cell is None else repr(cell) if quoted else str(cell))
    return texts
