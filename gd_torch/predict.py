"""Predictions of a trained run for the rows of a table:

    python scripts/predict.py --run runs/real/version_0 --input new_rows.csv --output predicted.csv

The input is a CSV file with a header row, a Parquet file (or a directory of them) or a Feather
file, with the columns the run was trained on (by name, in any order; other columns are carried
along; a categorical column's cells are its categories, as in training). The output, in the format
its extension names (.csv, .parquet, .feather), is the input's rows with the predictions appended,
written whole or not at all: a ``prediction`` column for one target; ``prediction_<target>`` for
each of several; for a class (a categorical target) one score per class (``prediction_digit=3``)
and ``prediction``, the class with the highest score. A CSV written from a CSV keeps its cells as
they were written. Exit code 0, or 2 with one ``error:`` line for a bad run or file.

A run directory may come from anyone: its checkpoint builds only gd_torch's models and torch.nn
modules; ``--allow my_models.Parabola`` lets it build a class of your own.
"""

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from gd_torch.api import load_run
from gd_torch.errors import ConfigError
from gd_torch.files import written_whole
from gd_torch.schema import Schema, tensor_of
from gd_torch.sources import SUFFIXES, ArrowFile, CSVFile, file_source
from gd_torch.tables import read_columns

EXIT_OK, EXIT_INVALID = 0, 2
WRITTEN = ("csv", "parquet", "feather")  # the formats --output can have


def predict_file(
    run_dir: str, input_path: str, output_path: str, checkpoint: str = "last", allow: list[str] | None = None
) -> int:
    """Writes ``output_path`` and returns the number of rows predicted. ``allow`` names the model classes
    of one's own the run's checkpoint may build (as ``load_run``'s)."""
    predictor = load_run(run_dir, checkpoint, allow=allow or [])
    schema = predictor.schema
    output = Path(output_path)
    kind = SUFFIXES.get(output.suffix.lower())
    if kind not in WRITTEN:
        raise ConfigError(
            f"--output: {output} is not a .csv, .parquet or .feather file; its extension names the format"
        )
    if not output.parent.is_dir():
        raise ConfigError(f"--output: {output.parent} is not a directory")
    try:
        # Every row is predicted: a missing cell is an error, never a dropped row.
        source = file_source(Path(input_path), "--input")
        if not isinstance(source, CSVFile | ArrowFile):  # its rows are written out again, with the predictions
            raise ValueError(f"--input: {input_path} is not a table with named columns: use .csv, .parquet or .feather")
        dtype = predictor.numbers_dtype()
        raw = read_columns(
            source,
            {"x": schema.x},
            key="--input",
            categorical=frozenset(schema.categories),
            missing_hint="every row of --input is predicted: fill the cell in, or leave its row out",
            dtype=dtype,
        )
        x = tensor_of(schema.encode(raw, "--input", schema.x), torch.device("cpu"), dtype=dtype)
    except ValueError as error:
        raise ConfigError(f"{error} (the run was trained on {', '.join(schema.x)})") from None
    with torch.no_grad():
        predicted = predictor(x)
    columns = prediction_columns(schema, predicted)
    taken = [name for name in columns if name in source.header()]
    if taken:
        raise ConfigError(f"--input: {input_path} already has a column {taken[0]!r}; rename it to keep it apart")
    if isinstance(source, CSVFile) and kind == "csv":
        write_csv_as_written(source, output, columns)
    else:
        write_table(source.whole(), output, kind, columns)
    return len(predicted)


def prediction_columns(schema: Schema, predicted: torch.Tensor) -> dict[str, Any]:
    """The columns the predictions add, by name: numbers, and for a class the class's name."""
    values = predicted.reshape(len(predicted), -1)
    numbers = list(values.T.numpy())  # in the model's dtype: float32, or float64 for a run in float64
    if len(schema.target_names) == 1:
        return {"prediction": numbers[0]}
    columns = {f"prediction_{name}": column for name, column in zip(schema.target_names, numbers, strict=True)}
    if schema.one_hot_target:
        classes = schema.categories[schema.y[0]]
        columns["prediction"] = [classes[i] for i in values.argmax(dim=1).tolist()]
    return columns


def write_csv_as_written(source: CSVFile, path: Path, columns: dict[str, Any]) -> None:
    """The CSV's rows, their cells as the file has them, with the predictions (9 significant digits)."""
    with source.path.open(newline="") as file:
        rows = [row for row in csv.reader(file) if row]
    cells = [[v if isinstance(v, str) else f"{v:.9g}" for v in row] for row in zip(*columns.values(), strict=True)]
    with written_whole(path) as temporary, temporary.open("w", newline="") as file:
        csv.writer(file).writerows(
            [[*rows[0], *columns], *([*row, *new] for row, new in zip(rows[1:], cells, strict=True))]
        )


def write_table(table: pa.Table, path: Path, kind: str, columns: dict[str, Any]) -> None:
    """``table`` with the prediction columns appended, written whole as ``kind``."""
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values))
    with written_whole(path) as temporary:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, temporary)
        elif kind == "feather":
            import pyarrow.feather as feather

            feather.write_feather(table, temporary)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, temporary)  # pyarrow quotes the header's names; readers take it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--run", required=True, help="the run directory, e.g. runs/real/version_0")
    parser.add_argument(
        "--input",
        required=True,
        help="a .csv, .parquet (or a directory of them) or .feather file with the run's columns",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="where to write the input's rows with a prediction column (.csv, .parquet, .feather)",
    )
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or a checkpoint file")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CLASS",
        help="a model class of your own the run's checkpoint may build, e.g. my_models.Parabola (again for"
        " another); without it, only gd_torch.models and torch.nn modules are built from a checkpoint",
    )
    args = parser.parse_args(argv)
    try:
        count = predict_file(args.run, args.input, args.output, args.checkpoint, args.allow)
    except ConfigError as error:
        # load_run names its arguments; here they are the command's flags.
        message = str(error).replace("run_dir: ", "--run: ", 1).replace("checkpoint: ", "--checkpoint: ", 1)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_INVALID
    print(f"Wrote {count} predictions to {args.output}")
    return EXIT_OK
