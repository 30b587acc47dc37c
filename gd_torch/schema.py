"""What a table's columns become for the model: numbers as they are, a categorical column as one
one-hot column per category (``color=blue``, ``color=red``), learned from the training split.

The schema travels in the run's checkpoints, so a trained run takes the raw table again (``load_run``,
``scripts/predict.py``): the same columns by name, the same categories, in the same order.
"""

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from gd_torch.tables import NAMED, Table

__all__ = ["Schema", "learn_categories", "tensor_of"]


@dataclass
class Schema:
    """The raw columns of x and of y, and the categories of those that are categorical.

    Attributes:
        x: x's columns in the table, in order.
        y: y's columns in the table, in order.
        categories: For each categorical column, its categories in the order of their one-hot columns.
    """

    x: list[str]
    y: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns: x's, each categorical one as its one-hot columns."""
        return self._encoded(self.x)

    @property
    def target_names(self) -> list[str]:
        """The model's outputs: y's, a categorical target as its one-hot columns."""
        return self._encoded(self.y)

    @property
    def one_hot_target(self) -> bool:
        """Whether y is one categorical column: a class, one-hot (accuracy is then measured)."""
        return len(self.y) == 1 and self.y[0] in self.categories

    @property
    def categorical_features(self) -> list[bool]:
        """For each of the model's input columns, whether it is a one-hot column."""
        return [c in self.categories for c in self.x for _ in self._one_hot_names(c)]

    def _encoded(self, columns: list[str]) -> list[str]:
        return [name for c in columns for name in self._one_hot_names(c)]

    def _one_hot_names(self, column: str) -> list[str]:
        return [f"{column}={v}" for v in self.categories[column]] if column in self.categories else [column]

    def encode(self, table: Table, key: str, wanted: list[str], rows: np.ndarray | None = None) -> list:
        """The ``wanted`` columns of ``table`` as the model's columns: a number column as it is,
        a categorical one as one 0/1 column per category. A category the schema does not know (among
        ``rows``, when given) is a ValueError that names it, its row (or line) and the known ones."""
        encoded, unknown, count = [], [], 0
        for position, name in enumerate(wanted):
            values = table.columns[name]
            if name not in self.categories:
                encoded.append(values)
                continue
            at = pc.index_in(values, value_set=pa.array(self.categories[name]))
            strangers = np.flatnonzero(np.asarray(at.is_null()))
            if rows is not None:
                strangers = np.intersect1d(strangers, rows)
            count += len(strangers)
            unknown += [(row, position, name, values[row].as_py()) for row in strangers[:NAMED].tolist()]
            index = np.asarray(at.fill_null(-1))
            encoded += [(index == i).astype(np.float32) for i in range(len(self.categories[name]))]
        if unknown:
            shown = sorted(unknown)[:NAMED]
            where = table.where(np.array([row for row, *_ in shown]))
            named = "; ".join(f"{at}, column {c!r}: {cell!r}" for at, (*_, c, cell) in zip(where, shown, strict=True))
            more = f"; and {count - NAMED} more" if count > NAMED else ""
            known = "; ".join(f"{c}: {', '.join(v)}" for c, v in self.categories.items())
            raise ValueError(f"{key}: categories the training split does not have: {named}{more} (it has {known})")
        return encoded

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> "Schema":
        return cls(list(values["x"]), list(values["y"]), {c: list(v) for c, v in values.get("categories", {}).items()})


def learn_categories(column: pa.Array | pa.ChunkedArray) -> list[str]:
    """The distinct values of a categorical column (text), in numeric order when all of them are
    numbers (``2`` before ``10``), else in text order."""
    values = pc.unique(column).to_pylist()
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def block_of(
    columns: list,
    rows: np.ndarray | None = None,
    empty: Callable[[tuple[int, int]], np.ndarray] | None = None,
    dtype: type = np.float32,
) -> np.ndarray:
    """The columns (NumPy arrays or Arrow chunked arrays) as one (columns, N) ``dtype`` block,
    each copied once, chunk by chunk (only ``rows`` of them, sorted positions, when given). A column
    is dropped from ``columns`` once it is copied, so a table read whole is not held twice.
    ``empty(shape)`` gives the block to copy into: the block is then always a copy, the caller's to
    write in place (without it, a fresh one, or columns that already are one block taken as they are)."""
    rows_of_one = _rows_of_one_block(columns, dtype) if rows is None and empty is None else None
    if rows_of_one is not None:  # already a block, read so (gd_torch.tables): taken as it is
        columns.clear()
        return rows_of_one
    length = len(rows) if rows is not None else len(columns[0])
    shape = (len(columns), length)
    block = empty(shape) if empty is not None else np.empty(shape, dtype=dtype)
    for j in range(len(columns)):
        parts = columns[j].chunks if isinstance(columns[j], pa.ChunkedArray) else [columns[j]]
        at = written = 0
        for part in parts:
            values = part.to_numpy(zero_copy_only=False) if isinstance(part, pa.Array) else part
            if rows is None:
                block[j, written : written + len(values)] = values
                written += len(values)
            else:
                start, stop = np.searchsorted(rows, [at, at + len(values)])
                block[j, written : written + stop - start] = values[rows[start:stop] - at]
                written += stop - start
            at += len(values)
        columns[j] = None
    return block


def _rows_of_one_block(columns: list, dtype: type) -> np.ndarray | None:
    """The columns as one (columns, N) view when they are consecutive ``dtype`` rows of one array."""
    first = columns[0]
    if not (isinstance(first, np.ndarray) and first.dtype == dtype and first.base is not None):
        return None
    size = first.itemsize
    stride = first.base.strides[0] if first.base.ndim == 2 else None
    start = first.__array_interface__["data"][0]
    for j, column in enumerate(columns):
        if not (isinstance(column, np.ndarray) and column.base is first.base and column.dtype == dtype
                and column.strides == (size,) and len(column) == len(first)
                and column.__array_interface__["data"][0] == start + j * (stride or 0)):  # fmt: skip
            return None
    return np.lib.stride_tricks.as_strided(first, shape=(len(columns), len(first)), strides=(stride, size))


def torch_dtype(dtype: type) -> torch.dtype:
    """The torch dtype of a NumPy one (np.float32: torch.float32)."""
    return torch.from_numpy(np.empty(0, dtype)).dtype


def tensor_of(
    columns: list, device: torch.device, rows: np.ndarray | None = None, dtype: type = np.float32
) -> torch.Tensor:
    """The columns as one ``dtype`` tensor on ``device``: shape (N,) for one column, else (N, columns).

    The columns are copied as rows of a (columns, N) block (see :func:`block_of`), and the result is
    its transpose: a valid (N, columns) input that matrix products take without another copy (a
    column-by-column interleave into (N, columns) runs at half the speed). On CUDA the block goes
    through pinned memory, copied without waiting. ``columns`` is emptied as it is copied."""
    block = torch.from_numpy(block_of(columns, rows, dtype=dtype))
    pinned = device.type == "cuda"  # a copy from pinned memory does not wait for the device
    block = block.pin_memory().to(device, non_blocking=True) if pinned else block.to(device)
    return block[0] if len(block) == 1 else block.T
