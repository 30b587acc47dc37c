"""TablePoints: the points of a table, a file read by its extension or a DataFrame handed over, held on
the training device or streamed a chunk at a time. Configs name it ``gd_torch.data.TablePoints``
(``gd_torch.data`` exports it), or by its first name, ``CSVPoints``.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pyarrow as pa
import torch

from gd_torch.batches import Batch
from gd_torch.data import SPLITS, Features, PointData
from gd_torch.pieces import Piece, shards
from gd_torch.schema import Schema, learn_categories, tensor_of, torch_dtype
from gd_torch.sources import Source, file_source, memory_source
from gd_torch.splits import Split, converted_dtype
from gd_torch.streamed import EveryStep, OnePass, StreamBatches, Streamed
from gd_torch.streams import CODES, StreamedTable
from gd_torch.tables import READ_AS, Missing, Table, read_columns, read_header


class TablePoints(PointData):
    """Points from a table: a CSV, Parquet, Feather or .npy file, or a DataFrame handed to gd_torch.fit.

    A file is read by its extension; a table in memory is the one given as ``gd_torch.fit(config,
    data=...)``. The table is read and checked when the config is.

    Files: ``.csv`` (a header row), ``.parquet`` or a directory of Parquet shards, ``.feather``/``.arrow``
    (Arrow IPC), ``.npy`` (a structured array's fields, or a 2-D array's columns ``"0"``, ``"1"``, ...).
    They are read by pyarrow, multi-threaded, numbers straight to float32 (to float64 when the command
    trains in float64, ``--trainer.precision 64-true``: every digit kept): no Python object per cell.

    Args:
        path: The table's file (relative to the directory you run from), or a directory of Parquet
            files; null: the table handed to ``gd_torch.fit(config, data=...)``.
        x: The feature column, or a list of them (one per feature); left out: every column but y's.
        y: The target column, or a list of them: the model then predicts one value per target.
        categorical: Columns of x or y whose cells are categories (text or numbers): each becomes one
            one-hot column per category of the training split (``color=red``). A categorical y is a
            class, one-hot: the metrics then include accuracy. A column of categories in the file
            (a pandas ``category``, an Arrow dictionary) is categorical without being named here.
        val_path: A table with the same columns whose rows are the validation split
            (instead of ``val_fraction``).
        test_path: Likewise for the test split (instead of ``test_fraction``).
        missing: A missing cell (empty, NA, nan, null, ...) in x or y: error (every bad cell named) or
            drop (its row is left out; the console says how many, per file).
        chunk_rows: null holds the table in memory (on the training device). A number streams a
            Parquet file, a directory of Parquet files or a .npy file this many rows at a time, for
            tables larger than memory: full batch is still one step per pass over every row (the
            chunks' gradients summed); mini-batches shuffle the row groups and a buffer of this many rows.
        **options: ``batch_size``, ``seed``, ``standardize``, ``val_fraction``, ``test_fraction`` (see PointData).
    """

    def __init__(
        self,
        path: str | None = None,
        x: str | list[str] | None = None,
        y: str | list[str] | None = None,
        categorical: list[str] | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        missing: Missing = "error",
        chunk_rows: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if missing not in ("error", "drop"):
            raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
        if chunk_rows is not None and (isinstance(chunk_rows, bool) or chunk_rows < 1):
            raise ValueError(f"chunk_rows must be >= 1 or null (the table held in memory), got {chunk_rows}")
        self.path, self.chunk_rows = path, chunk_rows
        self.dtype = READ_AS.get()  # float64 when the command builds a run in float64
        source = handed_table("path") if path is None else file_source(Path(path), "path")
        header = read_header(source, "path")  # a file that is no table is said here, first
        if y is None:
            raise ValueError("y must name the target column, or a list of them")
        self.y_columns = [y] if isinstance(y, str) else list(y)
        if not self.y_columns:
            raise ValueError("y must name at least one column")
        if x is None:
            self.x_columns = [c for c in header if c not in self.y_columns]
        else:
            self.x_columns = [x] if isinstance(x, str) else list(x)
        if not self.x_columns:
            raise ValueError("x must name at least one column")
        both = [c for c in self.x_columns if c in self.y_columns]
        if both:
            raise ValueError(f"x and y both name the column {both[0]!r}; a column is a feature or a target")
        self.categorical = list(categorical or [])
        stray = [c for c in self.categorical if c not in (*self.x_columns, *self.y_columns)]
        if stray:
            raise ValueError(f"categorical: {stray[0]!r} is not one of x's or y's columns")
        self.categorical += [c for c in source.categorical_columns() if c in (*self.x_columns, *self.y_columns)
                             and c not in self.categorical]  # fmt: skip
        if any(c in self.categorical for c in self.y_columns) and len(self.y_columns) > 1:
            raise ValueError("categorical: a categorical y is a class and must be the only target column")
        self.missing = missing
        columns = {"x": self.x_columns, "y": self.y_columns}
        absent = [(k, c) for k, names in columns.items() for c in names if c not in header]
        if absent:
            raise ValueError(
                f"{absent[0][0]}: {source.name} has no column {absent[0][1]!r}; it has {', '.join(header)}"
            )
        self.tables: dict[str, Table] = {}
        self.streams: dict[str, StreamedTable] = {}
        if chunk_rows is not None:
            self._stream(source, val_path, test_path)
            return
        read = {"missing": missing, "categorical": frozenset(self.categorical), "dtype": self.dtype}
        self.tables["path"] = read_columns(source, columns, key="path", **read)
        for key, (_, held) in self._held_out_files(val_path, test_path).items():
            self.tables[key] = read_columns(held, columns, key=key, **read)
        self.schema = self._learn_schema()  # the columns the model takes, known before the points are made

    def _held_out_files(self, val_path: str | None, test_path: str | None) -> dict[str, tuple[str, Source]]:
        """``{"val_path": ("val", source), ...}`` for the splits given as files of their own."""
        held = {}
        for split, split_path in (("val", val_path), ("test", test_path)):
            if split_path is None:
                continue
            if getattr(self, f"{split}_fraction"):
                raise ValueError(f"{split}_path and {split}_fraction both give a {split} split; set only one")
            held[f"{split}_path"] = (split, file_source(Path(split_path), f"{split}_path"))
        return held

    def _stream(self, source, val_path: str | None, test_path: str | None) -> None:
        """The table streamed: checked, its split, categories and statistics learned, each in a pass."""
        read = (self.x_columns, self.y_columns, self.categorical, self.missing, self.chunk_rows)
        main = self.streams["path"] = StreamedTable(source, "path", *read, dtype=self.dtype)
        for key, (split, held) in self._held_out_files(val_path, test_path).items():
            self.streams[key] = StreamedTable(held, key, *read, split_code=CODES[split], dtype=self.dtype)
        main.set_split(self.split_codes(main.rows))
        categories, mean, std = main.learn(self.standardize)
        for column, values in categories.items():
            if len(values) < 2:
                raise ValueError(
                    f"categorical: column {column!r} has {len(values)} category ({', '.join(map(repr, values))})"
                    " in the training split; it tells the points apart no more than a constant"
                )
        self.schema = Schema(self.x_columns, self.y_columns, categories)
        for stream in self.streams.values():
            stream.strangers(self.schema)
        self.features = Features(self.schema.feature_names)
        if self.standardize:  # in the blocks' dtype, as a chunk is standardized in its block; float64 kept
            self._statistics64 = self._streamed_statistics(mean, std)
            dtype = torch_dtype(self.dtype)
            self.features.mean, self.features.std = (value.to(dtype) for value in self._statistics64)

    def _streamed_statistics(self, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
        """Each model input's mean and standard deviation (a one-hot column's 0 and 1), in float64."""
        means, stds, at = [], [], 0
        for column in self.x_columns:
            if column in self.schema.categories:
                means += [0.0] * len(self.schema.categories[column])
                stds += [1.0] * len(self.schema.categories[column])
                continue
            if std[at] == 0:
                raise ValueError(
                    f"standardize: feature {column!r} is constant ({mean[at]:g}) in the training split, so it"
                    " cannot be standardized; drop it from x or set standardize: false"
                )
            means.append(mean[at])
            stds.append(std[at])
            at += 1
        shape = () if len(means) == 1 else (len(means),)
        return torch.tensor(means, dtype=torch.float64).reshape(shape), torch.tensor(stds, dtype=torch.float64).reshape(
            shape
        )

    def setup(self, stage: str) -> None:
        first = not self.splits and not getattr(self, "_said", False)  # what was dropped is said once
        if self.streams:
            self.device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
            dtype = converted_dtype(self.trainer)
            if self.standardize and dtype != torch.float32:  # standardized in the run's precision
                self.features.mean, self.features.std = (value.to(dtype) for value in self._statistics64)
        else:
            super().setup(stage)
        self._said = True
        if first and (self.trainer is None or self.trainer.is_global_zero):
            dropped = {key: (t.dropped, t.read, t.rows) for key, t in self.tables.items()}
            dropped |= {key: (len(t.dropped), t.total, t.rows) for key, t in self.streams.items()}
            for key, (count, read, kept) in dropped.items():
                if count:
                    print(f"{key}: {count} of {read} rows dropped (a missing cell), {kept} kept", flush=True)

    def _streamed_split(self, name: str) -> tuple[StreamedTable, int] | None:
        """The stream holding a split's rows and the split's code, or None when it has none."""
        code = CODES[name]
        key = f"{name}_path"
        if key in self.streams:
            return self.streams[key], code
        main = self.streams["path"]
        return (main, code) if main.count(code) else None

    def measured_splits(self, device: torch.device) -> "dict[str, Split]":
        if not self.streams:
            return super().measured_splits(device)
        found = {name: self._streamed_split(name) for name in SPLITS}
        return {name: Streamed(*where, self, device) for name, where in found.items() if where is not None}

    def _shard(self, name: str) -> tuple[Streamed, list[int]]:
        """This process's share of a streamed split (contiguous pieces), and every process's row count."""
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        table, code = self._streamed_split(name)
        blocks, rows = self._shared_out(name, world)
        return Streamed(table, code, self, self.device, pieces=blocks[rank]), rows

    def _shared_out(self, name: str, world: int) -> tuple[list[list[Piece]], list[int]]:
        """A streamed split's pieces in ``world`` contiguous blocks, and the rows of the split in each."""
        table, code = self._streamed_split(name)
        counts = table.piece_counts(code)
        blocks = shards(table.pieces, counts, world)
        at = {id(piece): count for piece, count in zip(table.pieces, counts, strict=True)}
        return blocks, [sum(at[id(piece)] for piece in block) for block in blocks]

    def shares(self, world: int) -> list[int]:
        """A streamed split is shared out by whole pieces (row groups), which need not divide evenly."""
        return self._shared_out("train", world)[1] if self.streams else super().shares(world)

    def train_dataloader(self):
        if not self.streams:
            return super().train_dataloader()
        split, rows = self._shard("train")
        if self.full_batch(len(rows)):
            return EveryStep(split)
        steps = max(math.ceil(count / self.batch_size) for count in rows)
        return StreamBatches(
            split, self.batch_size, self.chunk_rows, self.seed, steps, epoch=self._epoch, done=self._batches_done
        )

    def val_dataloader(self):
        if not self.streams:
            return super().val_dataloader()
        return OnePass(self._shard("val")[0]) if self._streamed_split("val") else []

    def _learn_schema(self) -> Schema:
        """The categories of each categorical column, from the rows of the training split."""
        table = self.tables["path"]
        rows = self.split_rows(table.rows)
        categories = {}
        for column in self.categorical:
            cells = table.columns[column]
            values = learn_categories(cells if rows is None else cells.take(pa.array(rows["train"].numpy())))
            if len(values) < 2:
                raise ValueError(
                    f"categorical: column {column!r} has one category ({values[0]!r}) in the training split;"
                    " it tells the points apart no more than a constant"
                )
            categories[column] = values
        return Schema(self.x_columns, self.y_columns, categories)

    def _tensors(self, table: Table, key: str, device: torch.device) -> Batch:
        x, y = (self.schema.encode(table, key, columns) for columns in (self.x_columns, self.y_columns))
        table.columns = {}  # now held by x and y alone, each column freed once it is copied
        tensors = tensor_of(x, device, dtype=self.dtype), tensor_of(y, device, dtype=self.dtype)
        pa.default_memory_pool().release_unused()  # Arrow's freed buffers back to the system
        return tensors

    def make_points(self, device: torch.device) -> Batch:
        return self._tensors(self.tables["path"], "path", device)

    def make_held_out(self, device: torch.device) -> dict[str, Batch]:
        held = {split: f"{split}_path" for split in ("val", "test") if f"{split}_path" in self.tables}
        return {split: self._tensors(self.tables[key], key, device) for split, key in held.items()}


CSVPoints = TablePoints  # the name of the CSV reader that came first: configs that use it keep working


_HANDED: ContextVar[object | None] = ContextVar("gd_torch_handed_table", default=None)


@contextmanager
def handing(data: object) -> Iterator[None]:
    """``data`` (a DataFrame, an Arrow table, a dict of columns) is the table of a TablePoints whose
    path is null, while the block runs: how ``gd_torch.fit(config, data=...)`` hands a table over."""
    token = _HANDED.set(data)
    try:
        yield
    finally:
        _HANDED.reset(token)


class HandedDataModule(pl.LightningDataModule):
    """Stands for the LightningDataModule handed to ``gd_torch.fit(config, data=module)``: the config
    names this class, and making it gives the module handed over, which the command then checks,
    sizes the model from and trains on as it does a configured one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> pl.LightningDataModule:
        data = _HANDED.get()
        if not isinstance(data, pl.LightningDataModule):
            raise ValueError(
                "data: gd_torch.data.HandedDataModule stands for a DataModule handed to gd_torch.fit(config,"
                " data=...); a config names the DataModule's own class"
            )
        return data  # not an instance of this class: Python does not call __init__ on it


def handed_table(key: str) -> Source:
    data = _HANDED.get()
    if data is None:
        raise ValueError(
            f"{key} must name the table's file (.csv, .parquet, .feather, .npy or a directory of Parquet files),"
            " or hand a table to gd_torch.fit(config, data=...)"
        )
    return memory_source(data)
