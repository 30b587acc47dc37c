"""Category columns: one-hot features named ``color=red``, categories from the training split, an unseen
category named in one error line (in training and at predict time); a categorical target is a class
(the digits table), with accuracy among the metrics, checked here against NumPy."""

import csv

import numpy as np
import pytest
import torch

from gd_torch.api import load_run
from gd_torch.predict import main as predict_main

from conftest import REPO, assert_clean_error

CSV = REPO / "configs" / "csv.yaml"
DIGITS = REPO / "configs" / "digits.yaml"
COLOURS = {"blue": -2.0, "green": 0.5, "red": 3.0}  # each colour's offset of y


def coloured(path, rows: int = 40, seed: int = 0, colours=tuple(COLOURS)) -> tuple[np.ndarray, list[str], np.ndarray]:
    """A table x1, color, y with y = 1.5 x1 + the colour's offset (+ a little noise)."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=rows), 4)
    colour = [colours[i % len(colours)] for i in range(rows)]
    y = np.round(1.5 * x + np.array([COLOURS.get(c, 0.0) for c in colour]) + rng.normal(scale=0.01, size=rows), 4)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["x1", "color", "y"])
        writer.writerows(zip(x.tolist(), colour, y.tolist(), strict=True))
    return x, colour, y


def flags(path, *more: str) -> list[str]:
    return [f"--data.init_args.path={path}", "--data.init_args.x=[x1, color]", "--data.init_args.categorical=[color]",
            "--model.model.init_args.features=4", *more]  # fmt: skip


def test_a_category_column_becomes_one_hot_features_and_the_fit_is_least_squares(train, tmp_path):
    path = tmp_path / "coloured.csv"
    x, colour, y = coloured(path)
    run = train(*flags(path), "--model.learning_rate=auto", "--trainer.max_steps=4000", config=CSV)
    assert run.exit_code == 0, run.stderr
    # The one-hot columns add up to the bias's: the Hessian is singular, and the console says why.
    assert "Condition number inf: the Hessian is singular" in run.stdout and "one-hot categories" in run.stdout
    assert run.summary["curvature"]["condition_number"] is None  # infinite: null in JSON
    model = load_run(run.run_dir)
    assert model.feature_names == ["x1", "color=blue", "color=green", "color=red"]
    one_hot = np.array([[c == name for name in ("blue", "green", "red")] for c in colour], dtype=float)
    design = np.column_stack([x, one_hot, np.ones(len(x))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    expected = design @ solution  # the least-squares predictions (the design is rank-deficient; they are unique)
    predicted = model.table({"x1": x.tolist(), "color": colour}).double().numpy()
    assert predicted == pytest.approx(expected, abs=1e-3)
    # predict.py takes the raw table too, categories as text.
    output = tmp_path / "predicted.csv"
    assert predict_main(["--run", str(run.run_dir), "--input", str(path), "--output", str(output)]) == 0
    with output.open() as file:
        written = [float(row["prediction"]) for row in csv.DictReader(file)]
    assert written == pytest.approx(expected, abs=1e-3)


def test_standardize_leaves_the_one_hot_columns_as_they_are(train, tmp_path):
    path = tmp_path / "coloured.csv"
    x, _, _ = coloured(path)
    run = train(*flags(path, "--data.init_args.standardize=true", "--trainer.max_steps=5"), config=CSV)
    assert run.exit_code == 0, run.stderr
    model = load_run(run.run_dir)
    assert model.x_mean.tolist() == pytest.approx([x.mean(), 0, 0, 0], abs=1e-6)
    assert model.x_std.tolist() == pytest.approx([x.std(), 1, 1, 1], rel=1e-5)


def test_a_category_the_training_split_lacks_is_one_error_line(train, tmp_path):
    path, held_out = tmp_path / "coloured.csv", tmp_path / "val.csv"
    coloured(path)
    coloured(held_out, rows=6, seed=1, colours=("blue", "purple", "red"))
    run = train(*flags(path, f"--data.init_args.val_path={held_out}"), config=CSV)
    assert_clean_error(
        run,
        "data.init_args.val_path: categories the training split does not have:",
        "line 3, column 'color': 'purple'; line 6, column 'color': 'purple'",
        "(it has color: blue, green, red)",
    )


def test_an_unseen_category_at_predict_time_is_one_error_line(train, tmp_path, capsys):
    path, new = tmp_path / "coloured.csv", tmp_path / "new.csv"
    coloured(path)
    coloured(new, rows=3, colours=("orange", "red"))
    run = train(*flags(path, "--trainer.max_steps=5"), config=CSV)
    assert run.exit_code == 0, run.stderr
    output = tmp_path / "predicted.csv"
    assert predict_main(["--run", str(run.run_dir), "--input", str(new), "--output", str(output)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --input: categories the training split does not have: line 2, column 'color'")
    assert "'orange'" in line and "(it has color: blue, green, red)" in line
    assert not output.exists()


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("--data.init_args.categorical=[colour]", ("categorical: 'colour' is not one of x's or y's columns",)),
        ("--data.init_args.categorical=[x1, color]", ("categorical: column 'x1' has",)),
    ],
)
def test_bad_categorical_settings_are_one_error_line(train, tmp_path, flag, words):
    path = tmp_path / "coloured.csv"
    coloured(path, rows=4, colours=("red",))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *(f"7,{line.split(',', 1)[1]}" for line in lines[1:])]) + "\n")  # x1 constant
    assert_clean_error(train(*flags(path), flag, config=CSV), *words)


def test_digits_is_a_class_learned_as_ten_targets_with_accuracy(train, tmp_path):
    run = train("--trainer.max_steps=150", "--tensorboard.sharpness_every=0", config=DIGITS)
    assert run.exit_code == 0, run.stderr
    model = load_run(run.run_dir)
    assert model.target_names == [f"digit={d}" for d in range(10)]
    table = np.loadtxt(REPO / "data" / "digits.csv", delimiter=",", skiprows=1)
    pixels, digits = table[:, :64], table[:, 64].astype(int)
    with torch.no_grad():
        scores = model(torch.tensor(pixels, dtype=torch.float32)).numpy()
    assert scores.shape == (1797, 10)
    accuracy = (scores.argmax(axis=1) == digits).mean()  # over every image, both splits
    metrics = run.summary["metrics"]
    reported = (metrics["train"]["accuracy"] * 1438 + metrics["val"]["accuracy"] * 359) / 1797
    assert reported == pytest.approx(accuracy, abs=1e-9)
    assert metrics["val"]["accuracy"] > 0.8, metrics["val"]
    assert "accuracy" in run.stdout.split("metrics:")[1].splitlines()[0]
    # predict.py: each class's score, and the class with the highest one.
    output = tmp_path / "predicted.csv"
    assert (
        predict_main(["--run", str(run.run_dir), "--input", str(REPO / "data" / "digits.csv"), "--output", str(output)])
        == 0
    )
    with output.open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[-11:] == [*(f"prediction_digit={d}" for d in range(10)), "prediction"]
    assert [int(row["prediction"]) for row in rows] == scores.argmax(axis=1).tolist()


def test_a_predictor_takes_the_raw_table_by_column_name():
    from gd_torch.models import LinearRegression, Predictor
    from gd_torch.schema import Schema

    model = LinearRegression(4)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([1.0, 10.0, 20.0, 30.0]))
    predictor = Predictor(model, Schema(["x1", "color"], ["y"], {"color": ["blue", "green", "red"]}))
    assert predictor.feature_names == ["x1", "color=blue", "color=green", "color=red"]
    predicted = predictor.table({"color": ["red", "blue"], "x1": [0.5, 2.0], "other": ["a", "b"]})
    assert predicted.tolist() == [30.5, 12.0]
    with pytest.raises(ValueError, match=r"row 1, column 'color': 'pink' \(it has color: blue, green, red\)"):
        predictor.table({"x1": [0.5, 2.0], "color": ["red", "pink"]})
    with pytest.raises(ValueError, match="the table has no column 'color'; the run was trained on x1, color"):
        predictor.table({"x1": [0.5]})


def test_resuming_on_other_categories_is_one_error_line(train, tmp_path):
    path, other = tmp_path / "coloured.csv", tmp_path / "other.csv"
    coloured(path)
    coloured(other, colours=("blue", "purple", "red"))  # as many one-hot columns, other meanings
    first = train(*flags(path, "--trainer.max_steps=5"), config=CSV)
    assert first.exit_code == 0, first.stderr
    checkpoint = first.run_dir / "checkpoints" / "last.ckpt"
    run = train(*flags(other, "--trainer.max_steps=10", f"--ckpt_path={checkpoint}"), config=CSV)
    assert run.exit_code == 2 and run.made == []  # nothing trained, no second run directory
    (line,) = run.stderr.splitlines()
    assert line == (
        f"error: ckpt_path: {checkpoint} was trained on other features:"
        " only in the checkpoint: color=green; only in this run's data: color=purple"
    )
