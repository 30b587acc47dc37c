"""How a table larger than memory is read: in *pieces* (a Parquet row group, or ``chunk_rows`` rows of
a .npy), the unit of sharding (each process streams its own contiguous pieces) and of shuffling
(mini-batches take the pieces in a seeded order); their rows in chunks of exactly ``chunk_rows``
rows; and the files they come from, checked unchanged at every pass.
"""

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from gd_torch.sources import ArrowFile, NumpyFile, Source, TableError

# How a pass reads Parquet (each measured on 30M rows of shards, 2 cores, page cache warm): through a
# memory map (ArrowFile._dataset(mapped=True): no copy out of the page cache, a tenth of the decoding's
# CPU time); four batches and two files ahead (pyarrow's defaults, sixteen and four, held more memory
# for no more rows a second); row groups read page by page (pre-buffering a whole row group first was
# slower and held more); batches of 131,072 rows, joined into chunks (whole chunks as Arrow batches
# held 100 MiB more). Not done: handing Arrow's freed memory back to the system after each batch (30 MiB
# saved, a third of the rate lost: the next batch's pages were then mapped afresh).
READ_ROWS = 1 << 17
READ_OPTIONS = {"batch_readahead": 4, "fragment_readahead": 2}


@dataclass
class Piece:
    """A Parquet row group, or ``chunk_rows`` rows of a .npy: where it starts in the table, its rows,
    and how to read columns of it (at most ``batch`` rows a table)."""

    start: int
    rows: int
    read: Callable[[list[str], int], Iterator[pa.Table]]
    fragment: Any = None  # a Parquet row group's: read with its neighbours through one dataset scan
    schema: pa.Schema | None = None


def pieces_of(source: Source, chunk_rows: int) -> list[Piece]:
    """The table's pieces in row order."""
    if isinstance(source, NumpyFile):
        array = source._array()
        names = source.header()

        def rows_of(start: int, stop: int) -> Callable[[list[str], int], Iterator[pa.Table]]:
            def read(columns: list[str], batch: int) -> Iterator[pa.Table]:
                part = array[start:stop]
                if array.dtype.names:
                    yield pa.table({c: np.ascontiguousarray(part[c]) for c in columns})
                else:
                    yield pa.table({c: np.ascontiguousarray(part[:, names.index(c)]) for c in columns})

            return read

        return [
            Piece(a, min(chunk_rows, len(array) - a), rows_of(a, a + chunk_rows))
            for a in range(0, len(array), chunk_rows)
        ]  # noqa: E501
    if type(source) is Source:  # a table handed over: in memory already
        raise TableError(f"{source.name} is a table in memory already; chunk_rows streams a file: leave it null")
    if not isinstance(source, ArrowFile) or source.format != "parquet":
        raise TableError(
            f"{source.name} cannot be streamed: chunk_rows streams a Parquet file, a directory of Parquet files"
            " or a .npy file; write the table as Parquet (or leave chunk_rows null to hold it in memory)"
        )
    pieces, start = [], 0
    dataset = source._dataset(mapped=True)
    for fragment in dataset.get_fragments():
        for group in fragment.split_by_row_group():
            rows = group.row_groups[0].num_rows

            def read(columns: list[str], batch: int, group=group) -> Iterator[pa.Table]:
                for record in group.to_batches(columns=columns, batch_size=batch, use_threads=True):
                    yield pa.Table.from_batches([record])

            pieces.append(Piece(start, rows, read, group, dataset.schema))
            start += rows
    return pieces


def files_of(source: Source, pieces: list[Piece]) -> list[str]:
    """The files a streamed table's pieces are read from."""
    if isinstance(source, NumpyFile):
        return [str(source.path)]
    return list(dict.fromkeys(piece.fragment.path for piece in pieces))


def stamps(paths: Iterable[str]) -> dict[str, tuple[int, int] | None]:
    """Each file's size and modification time (None: gone): a stat each, a few microseconds."""
    found = {}
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            found[path] = None
        else:
            found[path] = (status.st_size, status.st_mtime_ns)
    return found


def tables_of(pieces: list[Piece], columns: list[str], batch: int) -> Iterator[tuple[int, pa.Table]]:
    """Each piece's rows in order, as tables of at most ``batch`` rows with the table row each starts
    at. Parquet row groups are read through one dataset scan, which pyarrow reads ahead in parallel."""
    if not pieces or pieces[0].fragment is None:
        for piece in pieces:
            at = piece.start
            for table in piece.read(columns, batch):
                yield at, table
                at += table.num_rows
        return
    import pyarrow.dataset as ds

    first = pieces[0].fragment
    dataset = ds.FileSystemDataset([p.fragment for p in pieces], pieces[0].schema, first.format, first.filesystem)
    page_by_page = ds.ParquetFragmentScanOptions(pre_buffer=False)
    order = iter(pieces)
    at, left = 0, 0
    for record in dataset.to_batches(
        columns=columns, batch_size=min(batch, READ_ROWS), fragment_scan_options=page_by_page, **READ_OPTIONS
    ):
        while left == 0:  # a batch never spans two row groups
            piece = next(order)
            at, left = piece.start, piece.rows
        yield at, pa.Table.from_batches([record])
        at, left = at + record.num_rows, left - record.num_rows


def shards(pieces: list[Piece], rows: list[int], world: int) -> list[list[Piece]]:
    """The pieces in ``world`` contiguous blocks of about the same number of ``rows`` (one count a piece)."""
    total = sum(rows)
    blocks: list[list[Piece]] = [[] for _ in range(world)]
    seen = 0
    for piece, count in zip(pieces, rows, strict=True):
        # A piece goes to the process whose share its middle row falls in.
        rank = min(world - 1, int((seen + count / 2) * world / total)) if total else 0
        blocks[rank].append(piece)
        seen += count
    return blocks


class Rows:
    """The table rows a chunk holds, kept as spans of consecutive rows (start, count) and made an array
    only when something asks for one (a split's rows chosen, a bad cell named): a pass over every row
    never does, and a million rows' positions cost 1 ms of a streamed step to make."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.spans = spans

    def __len__(self) -> int:
        return sum(count for _, count in self.spans)

    @cached_property
    def array(self) -> np.ndarray:
        return np.concatenate([np.arange(start, start + count) for start, count in self.spans])

    def __getitem__(self, index):
        return self.array[index]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.array if dtype is None else self.array.astype(dtype)


def scan(pieces: list[Piece], columns: list[str], chunk_rows: int) -> Iterator[tuple[Rows, pa.Table]]:
    """Chunks of ``chunk_rows`` rows (the last may be smaller), each with the table rows it holds:
    the pieces' rows read in batches and joined or cut (without a copy) where a chunk ends."""
    parts: list[pa.Table] = []
    spans: list[tuple[int, int]] = []
    held = 0
    for at, table in tables_of(pieces, columns, chunk_rows):
        while table.num_rows:
            take = min(table.num_rows, chunk_rows - held)
            parts.append(table.slice(0, take))
            spans.append((at, take))
            table, at, held = table.slice(take), at + take, held + take
            if held == chunk_rows:
                yield Rows(spans), parts[0] if len(parts) == 1 else pa.concat_tables(parts)
                parts, spans, held = [], [], 0
    if held:
        yield Rows(spans), parts[0] if len(parts) == 1 else pa.concat_tables(parts)
