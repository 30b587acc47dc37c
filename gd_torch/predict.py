"""Predictions of a trained run for the rows of a CSV file:

    python scripts/predict.py --run runs/real/version_0 --input new_rows.csv --output predicted.csv

The input needs a header row and the columns the run was trained on (by name, in any order; other
columns are carried along; a categorical column's cells are its categories, as in training). The
output is the input's rows with the predictions appended, written whole or not at all: a
``prediction`` column for one target; ``prediction_<target>`` for each of several; for a class
(a categorical target) one score per class (``prediction_digit=3``) and ``prediction``, the class
with the highest score. Exit code 0, or 2 with one ``error:`` line for a bad run or file.
"""

import argparse
import csv
import sys
from pathlib import Path

import torch

from gd_torch.api import load_run
from gd_torch.errors import ConfigError
from gd_torch.files import written_whole
from gd_torch.schema import Schema, tensor_of
from gd_torch.sources import CSVFile, file_source
from gd_torch.tables import read_columns

EXIT_OK, EXIT_INVALID = 0, 2


def predict_file(run_dir: str, input_path: str, output_path: str, checkpoint: str = "last") -> int:
    """Writes ``output_path`` and returns the number of rows predicted."""
    predictor = load_run(run_dir, checkpoint)
    schema = predictor.schema
    source = Path(input_path)
    try:
        # Every row is predicted: a missing cell is an error, never a dropped row.
        table = file_source(source, "--input")
        if not isinstance(table, CSVFile):  # its rows are written out again, with the predictions
            raise ValueError(f"--input: {source} is not a .csv file; predict.py reads and writes CSV")
        raw = read_columns(
            table,
            {"x": schema.x},
            key="--input",
            categorical=frozenset(schema.categories),
            missing_hint="every row of --input is predicted: fill the cell in, or leave its row out",
        )
        x = tensor_of(schema.encode(raw, "--input", schema.x), torch.device("cpu"))
    except ValueError as error:
        raise ConfigError(f"{error} (the run was trained on {', '.join(schema.x)})") from None
    with torch.no_grad():
        predicted = predictor(x)
    names, cells = prediction_columns(schema, predicted)
    with source.open(newline="") as file:
        table = [row for row in csv.reader(file) if row]
    header = [name.strip() for name in table[0]]
    taken = [name for name in names if name in header]
    if taken:
        raise ConfigError(f"--input: {source} already has a column {taken[0]!r}; rename it to keep it apart")
    write_rows(
        Path(output_path), [[*table[0], *names]] + [[*row, *new] for row, new in zip(table[1:], cells, strict=True)]
    )
    return len(cells)


def prediction_columns(schema: Schema, predicted: torch.Tensor) -> tuple[list[str], list[list[str]]]:
    """The names of the columns the predictions add, and each row's cells."""
    values = predicted.reshape(len(predicted), -1)
    numbers = [[f"{value:.9g}" for value in row] for row in values.tolist()]
    if len(schema.target_names) == 1:
        return ["prediction"], numbers
    names = [f"prediction_{name}" for name in schema.target_names]
    if not schema.one_hot_target:
        return names, numbers
    classes = schema.categories[schema.y[0]]
    chosen = values.argmax(dim=1).tolist()
    return [*names, "prediction"], [[*row, classes[i]] for row, i in zip(numbers, chosen, strict=True)]


def write_rows(path: Path, rows: list[list[str]]) -> None:
    """All of ``rows`` as CSV at ``path``, or nothing."""
    if not path.parent.is_dir():
        raise ConfigError(f"--output: {path.parent} is not a directory")
    with written_whole(path) as temporary, temporary.open("w", newline="") as file:
        csv.writer(file).writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--run", required=True, help="the run directory, e.g. runs/real/version_0")
    parser.add_argument("--input", required=True, help="a CSV file with the columns the run was trained on")
    parser.add_argument("--output", required=True, help="where to write the input's rows with a prediction column")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or a checkpoint file")
    args = parser.parse_args(argv)
    try:
        count = predict_file(args.run, args.input, args.output, args.checkpoint)
    except ConfigError as error:
        # load_run names its arguments; here they are the command's flags.
        message = str(error).replace("run_dir: ", "--run: ", 1).replace("checkpoint: ", "--checkpoint: ", 1)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_INVALID
    print(f"Wrote {count} predictions to {args.output}")
    return EXIT_OK
