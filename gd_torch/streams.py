"""Tables larger than memory: a Parquet file, a directory of Parquet shards or a memory-mapped .npy,
read ``chunk_rows`` rows at a time.

When the config is read, the table is read whole once to check every cell (and count the rows that
``missing: drop`` leaves out), and once more for what the training split says: its categories and,
with ``standardize``, each feature's mean and standard deviation (Chan's merge of each chunk's, in
float64). After that, a pass over a split is a sequence of chunks: each one read by pyarrow (the next
one in a thread while the current one computes), its rows of the split kept, encoded as the schema
says, standardized, and moved to the device (through pinned memory on CUDA).

A Parquet row group (or ``chunk_rows`` rows of a .npy) is a *piece* (:mod:`gd_torch.pieces` reads
them): the unit of sharding (each process streams its own contiguous pieces) and of shuffling
(mini-batches take the pieces in a seeded order, through a shuffle buffer). What stays in memory:
the float32 blocks of three chunks (the one being used, the one read ahead, the one being filled:
:class:`Blocks`), what pyarrow's scan holds ahead (batches of ``READ_ROWS`` rows, whatever
``chunk_rows`` is), and one byte a row for the split.
"""

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from gd_torch.pieces import READ_ROWS, Piece, Rows, files_of, pieces_of, scan, stamps
from gd_torch.schema import Schema, block_of, learn_categories
from gd_torch.sources import Source, TableError, read_through
from gd_torch.tables import NAMED, Missing, Table, bad_cells, check_column, described, gaps_of, summary

Batch = tuple[torch.Tensor, torch.Tensor]
CODES = {"train": 0, "val": 1, "test": 2}


@contextmanager
def reading_beside(device: torch.device) -> Iterator[None]:
    """On the CPU, one core fewer for torch while a pass reads ahead: torch's threads spin while they
    wait, and would take the core the reading needs (measured on 2 cores: 27M rows a second with 2
    torch threads, 47M to 55M with 1). Put back when the pass ends."""
    threads = torch.get_num_threads()
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(threads - 1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Blocks:
    """Float32 blocks for a pass's chunks, each reused once nothing made from it is left (no tensor
    viewing it holds a reference): a fresh block of tens of MiB costs more than copying a chunk into
    it, as the allocator maps and zeroes new pages for each one (11 ms against 3 ms of CPU time for a
    million rows of 8 features, measured). A consumer that keeps its chunks gets fresh blocks."""

    KEPT = 6  # x and y of three chunks: the one in use, the one read ahead, the one being copied

    def __init__(self, dtype: type = np.float32) -> None:
        self._blocks: list[np.ndarray] = []
        self.dtype = dtype

    def empty(self, shape: tuple[int, int]) -> np.ndarray:
        for block in self._blocks:
            # References: the list's, the loop's and getrefcount's argument; any more is a tensor's.
            if block.shape == shape and sys.getrefcount(block) == 3:
                return block
        block = np.empty(shape, dtype=self.dtype)
        if len(self._blocks) < self.KEPT:
            self._blocks.append(block)
        return block


_END = object()


def prefetched(items: Iterator) -> Iterator:
    """``items``, the next one read in a thread while the current one is used (pyarrow and torch
    release the GIL, so reading overlaps computing)."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(next, items, _END)
        while True:
            item = future.result()
            if item is _END:
                return
            future = pool.submit(next, items, _END)
            yield item


class StreamedTable:
    """A table read a chunk at a time, checked when it is made (every bad cell named, as a table in
    memory would be). ``split_code``: None when the split of each row comes from codes looked up by
    its index, else the one split every row of this table is in (a ``val_path`` file's)."""

    def __init__(
        self,
        source: Source,
        key: str,
        x_columns: list[str],
        y_columns: list[str],
        categorical: list[str],
        missing: Missing,
        chunk_rows: int,
        split_code: int | None = None,
        dtype: type = np.float32,
    ) -> None:
        self.source, self.key, self.chunk_rows, self.dtype = source, key, chunk_rows, dtype
        self.x_columns, self.y_columns, self.categorical = x_columns, y_columns, frozenset(categorical)
        self.wanted = list(dict.fromkeys([*x_columns, *y_columns]))
        self.missing, self.split_code = missing, split_code
        try:
            self.pieces = pieces_of(source, chunk_rows)
        except TableError as error:
            raise TableError(f"{key}: {error}") from None
        self.total = sum(piece.rows for piece in self.pieces)
        if self.total == 0:
            raise TableError(f"{key}: {source.name} has a header but no data rows")
        self.stamps = stamps(files_of(source, self.pieces))  # every pass checks the files are these
        self.dropped = self._check()  # the table's rows left out for a missing cell, in order
        self.rows = self.total - len(self.dropped)
        if self.rows == 0:
            raise TableError(
                f"{key}: {source.name} has no rows left once the {self.total} with a missing cell are dropped"
            )
        self.codes: np.ndarray | None = None  # the split of each kept row (set_split), or split_code for all
        self._piece_counts: dict[int, list[int]] = {}  # each split's rows per piece, once the split is set

    @property
    def _checked_rows(self) -> int:
        """Rows a chunk of the passes that check the cells and learn the schema: the batches as read,
        not joined into chunks of chunk_rows (those passes hold no block the model takes)."""
        return min(self.chunk_rows, READ_ROWS)

    def _columns(self, table: pa.Table) -> dict:
        return {
            name: check_column(self.source, self.key, name, table.column(name), name in self.categorical, self.dtype)
            for name in self.wanted
        }

    def _check(self) -> np.ndarray:
        """One pass: every bad cell named (ten, then a count); the rows dropped for a missing cell."""
        shown: list[str] = []
        count, missing_named, dropped = 0, False, []
        read = read_through(self.source, scan(self.pieces, self.wanted, self._checked_rows), self.key)
        for rows, table in prefetched(read):
            columns = self._columns(table)
            bad = bad_cells(columns, self.missing)
            if bad:
                count += len(bad)
                missing_named |= any(problem == "is missing" for *_, problem in bad)
                if len(shown) < NAMED:
                    shown += described(self.source, columns, bad[: NAMED - len(shown)], int(rows[0]))
            if self.missing == "drop":
                dropped.append(rows[gaps_of(columns, table.num_rows)])
        if count:
            raise TableError(f"{self.key}: {self.source.name} has {summary(shown, count, missing_named)}")
        return np.concatenate(dropped) if dropped else np.zeros(0, dtype=np.int64)

    def set_split(self, codes: torch.Tensor | None) -> None:
        """The split of each kept row (PointData.split_codes of ``self.rows``); None: all in training."""
        self.codes = codes.numpy() if codes is not None else None
        self._piece_counts = {}

    def kept_rows(self, rows: Rows, columns: dict) -> np.ndarray:
        """Which of a chunk's rows (positions in it) are kept: those without a missing cell under drop."""
        if self.missing != "drop":
            return np.arange(len(rows))
        return np.flatnonzero(~gaps_of(columns, len(rows)))

    def codes_of(self, rows: np.ndarray) -> np.ndarray:
        """The split code of each of these (kept) table rows."""
        if self.split_code is not None:
            return np.full(len(rows), self.split_code, dtype=np.int8)
        if self.codes is None:
            return np.zeros(len(rows), dtype=np.int8)
        index = rows - np.searchsorted(self.dropped, rows) if len(self.dropped) else rows
        return self.codes[index]

    def learn(self, standardize: bool) -> tuple[dict[str, list[str]], np.ndarray | None, np.ndarray | None]:
        """One pass over the training rows: the categories of each categorical column and, with
        ``standardize``, the mean and standard deviation of each number column of x (float64)."""
        numbers = [c for c in self.x_columns if c not in self.categorical]
        values: dict[str, set] = {c: set() for c in self.categorical}
        if not (self.categorical or standardize):
            return {}, None, None  # nothing to learn: no pass
        n, mean, spread = 0, np.zeros(len(numbers)), np.zeros(len(numbers))
        read = read_through(self.source, scan(self.pieces, self.wanted, self._checked_rows), self.key)
        for rows, table in prefetched(read):
            columns = self._columns(table)
            kept = self.kept_rows(rows, columns)
            train = kept[self.codes_of(rows[kept]) == 0]
            if not len(train):
                continue
            for c in self.categorical:
                values[c] |= set(pc.unique(columns[c].values.take(pa.array(train))).to_pylist())
            if standardize and numbers:
                block = block_of([columns[c].values for c in numbers], train, dtype=self.dtype).T.astype(np.float64)
                k = len(block)
                chunk_mean = block.mean(axis=0)
                delta = chunk_mean - mean
                mean = mean + delta * (k / (n + k))
                spread = spread + ((block - chunk_mean) ** 2).sum(axis=0) + delta**2 * (n * k / (n + k))
                n += k
        categories = {c: learn_categories(pa.array(sorted(v))) for c, v in values.items()}
        if not (standardize and numbers):
            return categories, None, None
        return categories, mean, np.sqrt(spread / n)

    def strangers(self, schema: Schema) -> None:
        """A ValueError naming the held-out rows whose category the training split does not have (the
        first row of each such value, ten at most, then a count of the cells); rows dropped for a missing
        cell are not looked at, as a table in memory drops them before it looks."""
        if not self.categorical:
            return
        first: dict[tuple[str, str], int] = {}
        count = 0
        for rows, table in prefetched(scan(self.pieces, list(self.categorical), self._checked_rows)):
            for c in self.categorical:
                cells = pc.utf8_trim_whitespace(table.column(c).cast(pa.string()))
                unknown = np.flatnonzero(np.asarray(pc.invert(pc.is_in(cells, pa.array(schema.categories[c])))
                                                    .fill_null(False)))  # fmt: skip
                if len(unknown) and len(self.dropped):  # the rows missing: drop leaves out are not the table's
                    unknown = unknown[~np.isin(rows[unknown], self.dropped)]
                count += len(unknown)
                for at in unknown.tolist():
                    first.setdefault((c, cells[at].as_py()), int(rows[at]))
        if not count:
            return
        shown = sorted((row, c, value) for (c, value), row in first.items())[:NAMED]
        where = self.source.where(np.array([row for row, _, _ in shown]))
        named = "; ".join(f"{at}, column {c!r}: {value!r}" for at, (_, c, value) in zip(where, shown, strict=True))
        more = f"; and {count - len(shown)} more" if count > len(shown) else ""
        known = "; ".join(f"{c}: {', '.join(v)}" for c, v in schema.categories.items())
        raise ValueError(f"{self.key}: categories the training split does not have: {named}{more} (it has {known})")

    def count(self, code: int) -> int:
        if self.split_code is not None:
            return self.rows if code == self.split_code else 0
        if self.codes is None:
            return self.rows if code == 0 else 0
        return int((self.codes == code).sum())

    def piece_counts(self, code: int) -> list[int]:
        """How many rows of the split each piece holds (rows dropped or of other splits not counted),
        counted once: the loader, the step's bound and each process's share all ask."""
        if code not in self._piece_counts:
            counts = []
            for piece in self.pieces:
                rows = np.arange(piece.start, piece.start + piece.rows)
                if len(self.dropped):
                    rows = rows[~np.isin(rows, self.dropped)]
                counts.append(int((self.codes_of(rows) == code).sum()))
            self._piece_counts[code] = counts
        return self._piece_counts[code]

    def chunks(
        self, pieces: list[Piece], code: int, schema: Schema, mean: torch.Tensor | None, std: torch.Tensor | None,
        device: torch.device,
    ) -> Iterator[Batch]:  # fmt: skip
        """The rows of one split in ``pieces``, a chunk at a time, as the model's (x, y) on ``device``:
        read and encoded in a thread while the previous chunk computes."""
        pinned = device.type == "cuda"  # a copy from pinned memory does not wait for the device
        self._check_unchanged()
        with reading_beside(device):
            for x, y in prefetched(self._blocks(pieces, code, schema, pinned)):
                x, y = x.to(device, non_blocking=pinned), y.to(device, non_blocking=pinned)
                x, y = (x[0] if len(x) == 1 else x.T), (y[0] if len(y) == 1 else y.T)
                if mean is not None:  # in place: the block is this chunk's own
                    x = x.sub_(mean).div_(std)
                yield x, y

    def _check_unchanged(self) -> None:
        """A pass reads the files the table was checked in: one rewritten since would mix another
        table's rows into the run's (or, cut short under the memory map, end it with SIGBUS)."""
        now = stamps(self.stamps)
        changed = next((path for path, stamp in self.stamps.items() if now[path] != stamp), None)
        if changed is not None:
            raise TableError(
                f"{self.key}: {changed} changed while the run streamed it (its size or modification time);"
                " a streamed table must stay as it is until the run ends"
            )

    def _blocks(
        self, pieces: list[Piece], code: int, schema: Schema, pinned: bool
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Each chunk's rows of the split as (columns, rows) float32 blocks of x and y, each value copied
        once from Arrow's buffers (into a block of an earlier chunk once that one is let go)."""
        blocks_of_pass = Blocks(self.dtype)
        for rows, table in scan(pieces, self.wanted, self.chunk_rows):
            blocks = self._encoded(rows, table, code, schema, blocks_of_pass)
            del rows, table  # this chunk's Arrow buffers go before the next chunk is read
            if blocks is not None:
                yield tuple(block.pin_memory() if pinned else block for block in blocks)

    def _encoded(
        self, rows: Rows, table: pa.Table, code: int, schema: Schema, blocks: Blocks
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A chunk's rows of the split as (columns, rows) blocks of x and y; None when it has none."""
        chosen = self._chosen(rows, table, code)
        if chosen is not None and not len(chosen):
            return None
        values = {
            name: self._categories(table.column(name)) if name in self.categorical else table.column(name)
            for name in self.wanted
        }
        part = Table(self.source, values, table.num_rows, kept=rows)
        x, y = (
            torch.from_numpy(block_of(schema.encode(part, self.key, columns, chosen), chosen, blocks.empty))
            for columns in (self.x_columns, self.y_columns)
        )
        return x, y

    @staticmethod
    def _categories(array: pa.ChunkedArray) -> pa.ChunkedArray:
        """A categorical column's cells as stripped text (a dictionary's values, numbers as text)."""
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
        return pc.utf8_trim_whitespace(array)

    def _chosen(self, rows: Rows, table: pa.Table, code: int) -> np.ndarray | None:
        """The positions in a chunk of the split's rows (None: every one of them)."""
        everything = self.split_code is None and self.codes is None
        if self.missing != "drop" and everything:
            return None if code == 0 else np.zeros(0, dtype=np.int64)
        kept = np.arange(len(rows))
        if self.missing == "drop":
            kept = np.flatnonzero(~gaps_of(self._columns(table), len(rows)))
        return kept[self.codes_of(rows[kept]) == code]
