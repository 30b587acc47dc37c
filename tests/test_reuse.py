"""The trained model reused (load_from_checkpoint, load_run, scripts/predict.py) against the run's own
values; split and file options; the pictures; metrics against NumPy; a large model's console summary."""

import csv
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from gd_torch import ConfigError, load_run
from gd_torch.metrics import regression_metrics
from gd_torch.module import GradientDescent
from gd_torch.predict import main as predict

from conftest import REPO, assert_clean_error, read_events

CONFIGS = REPO / "configs"
THREE = REPO / "data" / "three_features.csv"
SINE = REPO / "data" / "noisy_sine.csv"


@pytest.fixture
def csv_run(train):
    run = train(f"--data.init_args.path={THREE}", "--data.init_args.standardize=true", config=CONFIGS / "csv.yaml")
    assert run.exit_code == 0, run.stderr
    return run


def three_features() -> tuple[torch.Tensor, np.ndarray]:
    table = np.loadtxt(THREE, delimiter=",", skiprows=1)
    return torch.tensor(table[:, :3], dtype=torch.float32), table


def test_load_from_checkpoint_needs_no_model_and_takes_raw_x(csv_run):
    module = GradientDescent.load_from_checkpoint(csv_run.run_dir / "checkpoints" / "last.ckpt", map_location="cpu")
    x, table = three_features()
    with torch.no_grad():
        loss = torch.nn.functional.mse_loss(module(x), torch.tensor(table[:, 3], dtype=torch.float32)).item()
    assert loss == pytest.approx(csv_run.summary["final_loss"], rel=1e-5)
    assert module.learning_rate == 0.1 and module.reduction == "mean"
    assert module.model.weight.tolist() == pytest.approx(csv_run.summary["params"]["weight"], rel=1e-7)


def test_load_run_folds_standardization_into_raw_predictions(csv_run):
    model = load_run(csv_run.run_dir)
    x, table = three_features()
    with torch.no_grad():
        predicted = model(x).double().numpy()
    raw = csv_run.summary["params_in_data_units"]  # the linear model in the table's own units
    np.testing.assert_allclose(predicted, table[:, :3] @ raw["weight"] + raw["bias"], atol=1e-4)
    assert float(np.mean((predicted - table[:, 3]) ** 2)) == pytest.approx(csv_run.summary["final_loss"], rel=1e-5)


@pytest.mark.parametrize(
    "config, flags",
    [
        ("mlp.yaml", [f"--data.init_args.path={SINE}", "--trainer.max_steps=50"]),  # Adam, by class_path
        (
            "csv.yaml",
            [
                f"--data.init_args.path={THREE}",
                "--model.model=torch.nn.Linear",
                "--model.model.init_args.in_features=3",
                "--model.model.init_args.out_features=1",
            ],
        ),
    ],
    ids=["mlp with adam", "torch.nn.Linear"],
)
def test_load_run_rebuilds_any_model_from_the_run(train, config, flags):
    run = train(*flags, config=CONFIGS / config)
    assert run.exit_code == 0, run.stderr
    model = load_run(run.run_dir)
    checkpoint = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    for name, value in model.model.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][f"model.{name}"]), name
    assert model.x_mean is None  # not standardized: raw x goes straight in


@pytest.mark.parametrize("standardize", ["true", "false"])
def test_a_run_in_float64_loads_in_float64_and_predicts_as_the_run_did(train, standardize):
    """Before: load_run rebuilt a float32 model and copied the float64 weights into it (rounded), and its
    float64 statistics then met the float32 model: the predictions failed."""
    run = train(f"--data.init_args.path={THREE}", f"--data.init_args.standardize={standardize}",
                "--trainer.precision=64-true", config=CONFIGS / "csv.yaml")  # fmt: skip
    assert run.exit_code == 0, run.stderr
    model = load_run(run.run_dir)
    checkpoint = torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    for name, value in model.model.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][f"model.{name}"]), name  # float64, bit for bit
    x, table = three_features()  # float32, as a user's tensor would be
    with torch.no_grad():
        predicted = model(x)
        from_table = model.table({name: table[:, i] for i, name in enumerate(["x1", "x2", "x3"])})
        exact = model(torch.tensor(table[:, :3]))  # the run read the file in float64: every digit
    assert predicted.dtype == from_table.dtype == torch.float64
    # Standardized in float64 by the run and by the loaded model alike; the table read in float64 too.
    y = table[:, 3]
    assert float(np.mean((exact.numpy() - y) ** 2)) == pytest.approx(run.summary["final_loss"], rel=1e-12)
    assert float(np.mean((from_table.numpy() - y) ** 2)) == pytest.approx(run.summary["final_loss"], rel=1e-12)
    assert torch.allclose(predicted, from_table, rtol=1e-6)


@pytest.mark.slow  # a real process
def test_predict_script_appends_a_prediction_column(csv_run, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("id,x3,x1,x2\n" + "a,1.103,0.5,1.589\n" + "b,0,0,0\n")  # other order, an extra column
    out = tmp_path / "out.csv"
    argv = [
        sys.executable,
        "scripts/predict.py",
        "--run",
        str(csv_run.run_dir),
        "--input",
        str(rows),
        "--output",
        str(out),
    ]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Wrote 2 predictions to {out}"
    written = list(csv.reader(out.open()))
    assert written[0] == ["id", "x3", "x1", "x2", "prediction"]
    assert [row[:4] for row in written[1:]] == [["a", "1.103", "0.5", "1.589"], ["b", "0", "0", "0"]]
    with torch.no_grad():
        expected = load_run(csv_run.run_dir)(torch.tensor([[0.5, 1.589, 1.103], [0.0, 0.0, 0.0]])).tolist()
    assert [float(row[4]) for row in written[1:]] == pytest.approx(expected, rel=1e-7)
    assert float(written[2][4]) == pytest.approx(csv_run.summary["params_in_data_units"]["bias"], rel=1e-5)


@pytest.mark.parametrize("written", ["out.parquet", "out.feather", "out.csv"])
def test_predict_reads_parquet_and_writes_the_format_its_output_names(csv_run, tmp_path, written):
    """Before: a Parquet input was refused ("predict.py reads and writes CSV")."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    rows = pa.table({"id": ["a", "b"], "x3": [1.103, 0.0], "x1": [0.5, 0.0], "x2": [1.589, 0.0]})
    pq.write_table(rows, tmp_path / "rows.parquet")
    out = tmp_path / written
    assert (
        predict(["--run", str(csv_run.run_dir), "--input", str(tmp_path / "rows.parquet"), "--output", str(out)]) == 0
    )
    read = {"out.parquet": pq.read_table, "out.feather": feather.read_table, "out.csv": pcsv.read_csv}[written]
    table = read(out)
    assert table.column_names == ["id", "x3", "x1", "x2", "prediction"]
    assert table.select(["id", "x3", "x1", "x2"]).to_pydict() == rows.to_pydict()
    with torch.no_grad():
        expected = load_run(csv_run.run_dir)(torch.tensor([[0.5, 1.589, 1.103], [0.0, 0.0, 0.0]])).tolist()
    assert table["prediction"].to_pylist() == pytest.approx(expected, rel=1e-7)
    if written != "out.csv":
        assert table.schema.field("prediction").type == pa.float32()  # the model's dtype, not widened
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(
        ["rows.parquet", written]
    )  # no temporary


def test_predict_refuses_an_output_format_it_cannot_write(csv_run, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("x1,x2,x3\n1,2,3\n")
    assert predict(["--run", str(csv_run.run_dir), "--input", str(rows), "--output", str(tmp_path / "o.txt")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    wrong = tmp_path / "o.txt"
    assert line == f"error: --output: {wrong} is not a .csv, .parquet or .feather file; its extension names the format"


def test_predict_names_a_missing_column_and_writes_nothing(csv_run, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("x1,x2\n1,2\n")
    out = tmp_path / "out.csv"
    assert predict(["--run", str(csv_run.run_dir), "--input", str(rows), "--output", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --input:") and "no column 'x3'" in line and "trained on x1, x2, x3" in line
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == ["rows.csv"]  # no output, no temporary


def test_predict_says_a_missing_cell_must_be_filled_in_not_dropped(csv_run, tmp_path, capsys):
    """predict.py predicts every row: its error for a gap says so (before, it suggested missing: drop,
    an option predict.py does not have)."""
    rows = tmp_path / "rows.csv"
    rows.write_text("x1,x2,x3\n1,2,3\n4,,6\n")
    assert predict(["--run", str(csv_run.run_dir), "--input", str(rows), "--output", str(tmp_path / "o.csv")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --input: {rows} has a bad cell: line 3, column 'x2': '' is missing")
    assert "(every row of --input is predicted: fill the cell in, or leave its row out)" in line
    assert "missing: drop" not in line


def test_predict_and_load_run_refuse_what_is_not_a_run(tmp_path, capsys):
    assert predict(["--run", str(tmp_path), "--input", "x.csv", "--output", str(tmp_path / "o.csv")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --run:") and "not a run directory" in line
    with pytest.raises(ConfigError, match="'best' needs exactly one ModelCheckpoint"):
        (tmp_path / "config.yaml").write_text("{}")
        (tmp_path / "checkpoints").mkdir()
        torch.save({"callbacks": {}}, tmp_path / "checkpoints" / "last.ckpt")
        load_run(tmp_path, checkpoint="best")


def png_size(path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.mark.parametrize("config, data", [("mlp.yaml", SINE), ("csv.yaml", THREE)], ids=["one feature", "several"])
def test_fit_and_loss_pictures(train, config, data):
    run = train(
        f"--data.init_args.path={data}",
        "--data.init_args.val_fraction=0.2",
        "--trainer.max_steps=60",
        "--trainer.callbacks+=gd_torch.figures.FitFigure",
        "--trainer.callbacks+=gd_torch.figures.LossFigure",
        config=CONFIGS / config,
    )
    assert run.exit_code == 0, run.stderr
    for name in ("fit.png", "loss.png"):
        path = run.run_dir / name
        assert png_size(path) == (800, 500) and path.stat().st_size < 500_000
    events = read_events(run.run_dir)
    assert sorted(events.Tags()["images"]) == ["fit", "loss"]


def test_loss_figure_keeps_a_bounded_thinned_history():
    from gd_torch.figures import LossFigure

    figure = LossFigure(max_points=8)

    class Trainer:
        global_step = 0

    trainer = Trainer()
    for step in range(100):
        trainer.global_step = step + 1
        figure.on_train_batch_end(trainer, None, {"loss": torch.tensor(float(step))}, None, step)
    assert len(figure._steps) <= 8
    assert figure._steps == [int(v) for v in torch.stack(figure._losses).tolist()]
    assert figure._steps == list(range(0, 100, figure._stride))[: len(figure._steps)]


def test_metrics_equal_float64_numpy():
    rng = np.random.default_rng(0)
    y = rng.normal(3, 2, 1000)
    prediction = y + rng.normal(0, 0.5, 1000)
    got = regression_metrics(torch.tensor(prediction), torch.tensor(y))
    mse = np.mean((prediction - y) ** 2)
    r2 = 1 - np.sum((prediction - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert got == pytest.approx(
        {"mse": mse, "rmse": np.sqrt(mse), "mae": np.mean(np.abs(prediction - y)), "r2": r2}, rel=1e-12
    )
    assert regression_metrics(torch.ones(3), torch.full((3,), 2.0))["r2"] is None  # constant targets: undefined


def test_r2_of_an_exact_fit_is_numpys(train):
    """learn_both fits y = 2x + 1 exactly: R^2 from the final parameters in float64 NumPy, to 1e-6."""
    run = train(config=CONFIGS / "learn_both.yaml")
    assert run.exit_code == 0, run.stderr
    x, y = np.arange(5.0), np.array([1.0, 3, 5, 7, 9])
    m, b = run.summary["params"]["slope"], run.summary["params"]["intercept"]
    prediction = np.float32(m) * x.astype(np.float32) + np.float32(b)
    assert run.summary["metrics"]["train"]["r2"] == pytest.approx(
        1 - np.sum((prediction - y) ** 2) / np.sum((y - y.mean()) ** 2), abs=1e-6
    )
    assert run.summary["metrics"]["train"]["r2"] == pytest.approx(1, abs=1e-6)


def test_a_large_model_is_summed_up_by_tensor(train):
    run = train(f"--data.init_args.path={SINE}", "--trainer.max_steps=5", config=CONFIGS / "mlp.yaml")
    assert run.exit_code == 0, run.stderr
    assert "  parameters: 1,153 values in 6 tensors (1,153 learned)" in run.stdout
    norms = run.summary["param_norms"]
    for name in ("layers.0.weight", "layers.2.weight", "layers.4.bias"):
        (line,) = [line for line in run.stdout.splitlines() if line.split()[:1] == [name]]
        assert float(line.split("norm ")[1]) == pytest.approx(
            norms.get(name, abs(run.summary["params"].get(name, 0))), rel=1e-5
        )
    assert run.summary["params"]["layers.4.bias"] is not None  # small tensors keep their values


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--data.init_args.val_fraction=1.5"], ["data.init_args.val_fraction", "1.5", "[0, 1)"]),
        (
            ["--data.init_args.val_fraction=0.6", "--data.init_args.test_fraction=0.5"],
            ["data.init_args.val_fraction + test_fraction", "< 1"],
        ),
        (
            ["--data.init_args.test_fraction=0.005"],
            ["data.init_args.test_fraction", "0.005 of 60 points", "no point at all"],
        ),
        (
            [f"--data.init_args.val_path={THREE}", "--data.init_args.val_fraction=0.2"],
            ["data.init_args", "val_path and val_fraction", "only one"],
        ),
    ],
    ids=["fraction above 1", "fractions sum to 1 or more", "a split of no point", "file and fraction"],
)
def test_bad_split_settings(train, flags, words):
    assert_clean_error(train(f"--data.init_args.path={THREE}", *flags, config=CONFIGS / "csv.yaml"), *words)


def test_val_and_test_files(train, tmp_path):
    table = THREE.read_text().splitlines()
    paths = {}
    for split, rows in (("val", table[41:51]), ("test", table[51:])):
        paths[split] = tmp_path / f"{split}.csv"
        paths[split].write_text("\n".join([table[0], *rows]) + "\n")
    train_file = tmp_path / "train.csv"
    train_file.write_text("\n".join(table[:41]) + "\n")
    run = train(
        f"--data.init_args.path={train_file}",
        f"--data.init_args.val_path={paths['val']}",
        f"--data.init_args.test_path={paths['test']}",
        config=CONFIGS / "csv.yaml",
    )
    assert run.exit_code == 0, run.stderr
    assert json.loads((run.run_dir / "summary.json").read_text())["metrics"].keys() == {"train", "val", "test"}
    assert run.scalars("val/loss")[0][0] == 10


def test_a_test_file_without_the_columns(train, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,y\n1,2,3\n")
    run = train(f"--data.init_args.path={THREE}", f"--data.init_args.test_path={bad}", config=CONFIGS / "csv.yaml")
    assert_clean_error(run, "data.init_args.test_path", str(bad), "no column 'x3'")


def test_resuming_with_other_standardization_is_refused_before_training(csv_run, train):
    """The checkpoint's feature statistics must meet data standardized the same way."""
    checkpoint = csv_run.run_dir / "checkpoints" / "last.ckpt"
    run = train(f"--data.init_args.path={THREE}", "--ckpt_path", str(checkpoint), config=CONFIGS / "csv.yaml")
    assert run.exit_code == 2 and run.made == []  # the first run's directory is csv_run's own
    (line,) = run.stderr.splitlines()
    assert line == (
        f"error: ckpt_path: {checkpoint} was trained with standardized features;"
        " resume with the data's standardize as it was"
    )
