"""What a table's columns become for the model: numbers as they are, a categorical column as one
one-hot column per category (``color=blue``, ``color=red``), learned from the training split.

The schema travels in the run's checkpoints, so a trained run takes the raw table again (``load_run``,
``scripts/predict.py``): the same columns by name, the same categories, in the same order.
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from gd_torch.tables import NAMED, Cell

__all__ = ["Schema", "learn_categories"]


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

    def encode(
        self,
        columns: list[str],
        rows: Sequence[Sequence[Cell]],
        lines: Sequence[int] | None,
        key: str,
        wanted: list[str],
    ) -> list[list[float]]:
        """The ``wanted`` columns of ``rows`` (cells in the order of ``columns``) as numbers: a
        categorical cell becomes its one-hot values. A category the schema does not know is a
        ValueError that names it, its line and the known ones."""
        at = {name: columns.index(name) for name in wanted}
        index = {c: {v: i for i, v in enumerate(values)} for c, values in self.categories.items()}
        encoded, unknown = [], []
        for n, row in enumerate(rows):
            values: list[float] = []
            for name in wanted:
                cell = row[at[name]]
                if name not in index:
                    values.append(float(cell))
                    continue
                one_hot = [0.0] * len(index[name])
                if cell in index[name]:
                    one_hot[index[name][cell]] = 1.0
                else:
                    where = f"line {lines[n]}, " if lines is not None else f"row {n}, "
                    unknown.append(f"{where}column {name!r}: {cell!r}")
                values += one_hot
            encoded.append(values)
        if unknown:
            shown = "; ".join(unknown[:NAMED]) + (f"; and {len(unknown) - NAMED} more" if len(unknown) > NAMED else "")
            known = "; ".join(f"{c}: {', '.join(v)}" for c, v in self.categories.items())
            raise ValueError(f"{key}: categories the training split does not have: {shown} (it has {known})")
        return encoded

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> "Schema":
        return cls(list(values["x"]), list(values["y"]), {c: list(v) for c, v in values.get("categories", {}).items()})


def learn_categories(column: Sequence[Cell]) -> list[str]:
    """The distinct values of a categorical column, in numeric order when all of them are numbers
    (``2`` before ``10``), else in text order."""
    values = set(column)
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
