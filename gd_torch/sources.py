"""Where a table comes from: a file by its extension (CSV, Parquet or a directory of Parquet files,
Feather, .npy) or a table in memory (a pandas or polars DataFrame, a pyarrow Table, a dict of
columns). Each source gives its column names, its columns whole or a batch at a time (numbers
straight to float32 where the file holds text), and where a row is (a CSV's line, another's row).
"""

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

BATCH = 1 << 20  # rows read at a time into a table held in memory
MISSING = ("", "na", "n/a", "#n/a", "nan", "null", "none")
# A CSV reader's null spellings are case-sensitive: the usual casings here; any other goes the slow way.
NULL_SPELLINGS = sorted({form for word in MISSING for form in (word, word.upper(), word.title())})


class TableError(ValueError):
    """What is wrong with a table, in one line that names the file, the rows and the columns."""


@dataclass
class Source:
    """A table in memory (a pyarrow Table), the base of the files' sources: its columns' names, the
    columns themselves, and where a row is."""

    name: str  # what error lines call it: a file's path, or "the data" for a table handed over
    table: pa.Table | None = None

    def header(self) -> list[str]:
        return list(self.table.column_names)

    def schema(self) -> pa.Schema | None:
        return self.table.schema

    def categorical_columns(self) -> list[str]:
        """The columns that hold categories by their type (a pandas ``category``: an Arrow dictionary)."""
        schema = self.schema()
        return [f.name for f in schema if pa.types.is_dictionary(f.type)] if schema is not None else []

    def read_text(self, names: list[str]) -> pa.Table | None:
        """The columns as the file has them in text, for naming bad cells; None where there is no text."""
        return None

    def count(self) -> int | None:
        """The number of rows, where it is known without reading them."""
        return self.table.num_rows

    def estimate(self) -> int:
        return BATCH

    def batches(self, names: list[str], text: frozenset[str], dtype: type = np.float32) -> Iterator[pa.Table]:
        """The columns ``names``, a batch of rows at a time (those in ``text`` as text: a CSV file reads the
        others as ``dtype``; a typed source has them as they are)."""
        table = self.table.select(names)
        for start in range(0, table.num_rows, BATCH):
            yield table.slice(start, BATCH)

    def where(self, rows: np.ndarray) -> list[str]:
        return [f"row {int(r)}" for r in rows]

    def whole(self) -> pa.Table:
        """Every column, as the source types them (written out again with predictions beside them)."""
        return self.table


def read_through(source: Source, batches: Iterator[pa.Table], key: str | None = None) -> Iterator[pa.Table]:
    """The batches of a file; one that fails part-way (a corrupt page, a cut-off file) is one line
    naming the file (and the config ``key``), not pyarrow's error from deep in a read."""
    try:
        yield from batches
    except (pa.ArrowInvalid, OSError) as error:
        where = f"{key}: " if key else ""
        raise TableError(f"{where}{source.name} cannot be read: {' '.join(str(error).split())}") from None


class ConversionFailed(Exception):
    """A CSV cell that is no number: the file is read again as text, to name every bad cell."""


@dataclass
class CSVFile(Source):
    """A CSV file with a header row, read by pyarrow's multi-threaded reader."""

    path: Path = field(default_factory=Path)
    _header: list[str] | None = None

    def schema(self) -> None:
        return None

    def header(self) -> list[str]:
        if self._header is None:
            with self.path.open(newline="") as file:
                self._header = [name.strip() for name in next(csv.reader(file), [])]
        return self._header

    def read_text(self, names: list[str]) -> pa.Table:
        import pyarrow.csv as pcsv

        read = pcsv.ReadOptions(column_names=self.header(), skip_rows=1, block_size=1 << 24)
        text = pcsv.ConvertOptions(include_columns=names, column_types=dict.fromkeys(names, pa.string()))
        try:
            return pcsv.read_csv(self.path, read_options=read, convert_options=text)
        except pa.ArrowInvalid as error:
            raise TableError(self._parse_error(str(error))) from None

    def count(self) -> None:
        return None

    def whole(self) -> pa.Table:
        import pyarrow.csv as pcsv

        return pcsv.read_csv(self.path)  # the types inferred; read once already, checked, by read_columns

    def estimate(self) -> int:
        """The rows the file holds, estimated from its first 64 KiB (a little more, to grow seldom)."""
        with self.path.open("rb") as file:
            head = file.read(1 << 16)
        lines = max(1, head.count(b"\n"))
        return int(self.path.stat().st_size / len(head) * lines * 1.05) + 16 if head else 16

    def batches(self, names: list[str], text: frozenset[str], dtype: type = np.float32) -> Iterator[pa.Table]:
        import pyarrow.csv as pcsv

        number = pa.from_numpy_dtype(dtype)
        types = {name: pa.string() if name in text else number for name in names}
        # Blocks of 4 MiB: the streaming reader holds a few blocks at once (16 MiB blocks: ~600 MiB held).
        read = pcsv.ReadOptions(column_names=self.header(), skip_rows=1, block_size=1 << 22)
        convert = pcsv.ConvertOptions(
            include_columns=names, column_types=types, null_values=NULL_SPELLINGS, strings_can_be_null=True
        )
        try:
            with pcsv.open_csv(self.path, read_options=read, convert_options=convert) as reader:
                for batch in reader:
                    yield pa.Table.from_batches([batch])
        except pa.ArrowInvalid as error:
            if "conversion error" in str(error):
                raise ConversionFailed(str(error)) from None
            raise TableError(self._parse_error(str(error))) from None

    def where(self, rows: np.ndarray) -> list[str]:
        lines = self._lines()
        return [f"line {lines[int(r)]}" for r in rows]

    def _lines(self) -> list[int]:
        """The file line of each data row (blank lines are skipped): counted only to name a bad cell."""
        with self.path.open(newline="") as file:
            reader = csv.reader(file)
            next(reader, None)
            return [reader.line_num for row in reader if row]

    def _parse_error(self, message: str) -> str:
        """pyarrow's parse error in today's words: the first row whose cells the header does not match."""
        width = len(self.header())
        with self.path.open(newline="") as file:
            reader = csv.reader(file)
            next(reader, None)
            for row in reader:
                if row and len(row) != width:
                    return f"{self.name} line {reader.line_num} has {len(row)} cells; the header has {width}"
        return f"{self.name} cannot be read as CSV: {' '.join(message.split())}"


@dataclass
class ArrowFile(Source):
    """A Parquet file, a directory of Parquet shards, or a Feather (Arrow IPC) file."""

    path: Path = field(default_factory=Path)
    format: str = "parquet"
    _shards_checked: bool = False

    def _dataset(self, mapped: bool = False):
        """The file(s) as a pyarrow dataset; ``mapped``: read through a memory map, which spares a
        pass over a table a copy out of the page cache (a tenth of the time streaming takes to
        decode a Parquet file already in it)."""
        import pyarrow.dataset as ds
        from pyarrow.fs import LocalFileSystem

        files = LocalFileSystem(use_mmap=True) if mapped else None
        try:
            dataset = ds.dataset(self.path, format=self.format, filesystem=files)
            if not self._shards_checked and self.path.is_dir():
                self._check_shards(list(dataset.get_fragments()))
        except (pa.ArrowInvalid, OSError) as error:
            raise TableError(f"{self.name} cannot be read as {self.format}: {' '.join(str(error).split())}") from None
        return dataset

    def _check_shards(self, shards: list) -> None:
        """A directory's Parquet files are one table: there is one at least, and every one has the
        first one's columns (pyarrow takes the first file's schema and would read a column another
        lacks as nulls, or fail with a message naming neither file)."""
        if not shards:
            raise TableError(f"{self.name} is an empty directory; a directory is read as one table of Parquet files")
        first = shards[0].physical_schema.names
        for shard in shards[1:]:
            names = shard.physical_schema.names
            lacks, extra = [n for n in first if n not in names], [n for n in names if n not in first]
            if lacks or extra:
                differ = [f"lacks {', '.join(map(repr, lacks))}"] if lacks else []
                differ += [f"has {', '.join(map(repr, extra))}"] if extra else []
                raise TableError(
                    f"{self.name}: its Parquet files do not have the same columns: {Path(shard.path).name}"
                    f" {' and '.join(differ)} (against {Path(shards[0].path).name})"
                )
        self._shards_checked = True

    def schema(self) -> pa.Schema:
        return self._dataset().schema

    def header(self) -> list[str]:
        return list(self.schema().names)

    def count(self) -> int:
        return self._dataset().count_rows()

    def whole(self) -> pa.Table:
        return self._dataset().to_table()  # read once already, checked, by read_columns

    def batches(self, names: list[str], text: frozenset[str], dtype: type = np.float32) -> Iterator[pa.Table]:
        return read_through(self, self._batches(names))

    def _batches(self, names: list[str]) -> Iterator[pa.Table]:
        dataset = self._dataset()
        if self.format != "parquet":
            for batch in dataset.to_batches(columns=names, batch_size=BATCH, batch_readahead=2):
                yield pa.Table.from_batches([batch])
            return
        import pyarrow.parquet as pq

        # File by file, page by page: the dataset scanner would read sixteen batches ahead, and
        # pre-buffering whole row groups, which the table is copied out of anyway. Not through a
        # memory map: a file read whole stays mapped, and its pages would count as the process's
        # memory (measured: 907 MiB above the libraries for a 10M-row table, against 580 MiB).
        for fragment in dataset.get_fragments():
            with pq.ParquetFile(fragment.path, pre_buffer=False) as file:
                for batch in file.iter_batches(batch_size=BATCH, columns=names):
                    yield pa.Table.from_batches([batch])


@dataclass
class NumpyFile(Source):
    """A ``.npy`` file, memory-mapped: a structured array's fields are its columns; a plain 2-D array's
    columns are named by their position, ``"0"``, ``"1"``, ..."""

    path: Path = field(default_factory=Path)

    def _array(self) -> np.ndarray:
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as error:  # an object array would need pickle: code from the file
            raise TableError(f"{self.name} cannot be read as .npy: {' '.join(str(error).split())}") from None
        if array.dtype.names is None and array.ndim != 2:
            raise TableError(
                f"{self.name} holds an array of shape {array.shape}; a table is a 2-D array (rows, columns)"
                " or a 1-D structured array with named fields"
            )
        return array

    def schema(self) -> None:
        return None

    def header(self) -> list[str]:
        array = self._array()
        return list(array.dtype.names) if array.dtype.names else [str(i) for i in range(array.shape[1])]

    def count(self) -> int:
        return len(self._array())

    def batches(self, names: list[str], text: frozenset[str], dtype: type = np.float32) -> Iterator[pa.Table]:
        array = self._array()
        for start in range(0, len(array), BATCH):
            part = array[start : start + BATCH]
            if array.dtype.names:
                yield pa.table({name: np.ascontiguousarray(part[name]) for name in names})
            else:
                yield pa.table({name: np.ascontiguousarray(part[:, int(name)]) for name in names})


SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".feather": "feather", ".arrow": "feather",
            ".ipc": "feather", ".npy": "npy"}  # fmt: skip


def file_source(path: Path, key: str) -> Source:
    """The source that reads ``path``, by its extension (a directory: Parquet shards)."""
    name = str(path)
    if path.is_dir():
        return ArrowFile(name, path=path, format="parquet")
    if not path.is_file():
        raise TableError(f"{key}: no such file: {path}")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise TableError(
            f"{key}: {path} is not a table this reads by its extension; use .csv, .parquet (or a directory of"
            f" Parquet files), .feather/.arrow or .npy"
        )
    if kind == "csv":
        return CSVFile(name, path=path)
    if kind == "npy":
        return NumpyFile(name, path=path)
    return ArrowFile(name, path=path, format=kind)


def memory_source(data: Any, name: str = "data") -> Source:
    """A table handed over in memory: a pyarrow Table, a pandas or polars DataFrame, or a dict of
    columns (lists, NumPy arrays, tensors)."""
    if isinstance(data, pa.Table):
        return Source(name, data)
    if hasattr(data, "to_arrow") and not hasattr(data, "iloc"):  # polars
        return Source(name, data.to_arrow())
    if hasattr(data, "iloc"):  # pandas: its index is not a column
        return Source(name, pa.Table.from_pandas(data, preserve_index=False))
    if isinstance(data, Mapping):
        columns = {}
        for column, values in data.items():
            if hasattr(values, "detach"):  # a tensor
                values = values.detach().cpu().numpy()
            values = np.asarray(values) if not isinstance(values, pa.Array | pa.ChunkedArray) else values
            if isinstance(values, np.ndarray) and values.ndim != 1:
                raise TableError(f"{name}: column {column!r} has shape {values.shape}; a column is 1-D")
            columns[str(column)] = values
        try:
            return Source(name, pa.table(columns))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise TableError(f"{name}: the columns are not one table: {' '.join(str(error).split())}") from None
    raise TableError(
        f"{name}: a table is a pandas or polars DataFrame, a pyarrow Table, a dict of columns or (x, y)"
        f" arrays; got a {type(data).__name__}"
    )
