"""Several targets at once: the model predicts shape (N, k), the loss is the mean over every target
value, and the fit, the metrics per target and their averages, load_run and predict.py follow. The
linear case is checked against a float64 NumPy run of the same update and against least squares."""

import csv

import numpy as np
import pytest
import torch

from gd_torch.api import load_run
from gd_torch.predict import main as predict_main

from conftest import REPO, assert_clean_error, run_command

CSV = REPO / "configs" / "csv.yaml"
THREE = REPO / "data" / "three_features.csv"
SECOND = np.array([-1.5, 0.25, 2.0]), 3.0  # y2's weights and bias


def two_targets(tmp_path) -> tuple:
    """three_features.csv with a second target y2 = x @ w2 + b2 + noise; the path, X and Y (N, 2)."""
    rows = np.loadtxt(THREE, delimiter=",", skiprows=1)
    x, y = rows[:, :3], rows[:, 3]
    noise = np.random.default_rng(0).normal(scale=0.1, size=len(y))
    y2 = np.round(x @ SECOND[0] + SECOND[1] + noise, 6)
    path = tmp_path / "two.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["x1", "x2", "x3", "y", "y2"])
        writer.writerows([[*row, b] for row, b in zip(rows.tolist(), y2.tolist(), strict=True)])
    return path, x, np.column_stack([y, y2])


def flags(path) -> list[str]:
    return [f"--data.init_args.path={path}", "--data.init_args.y=[y, y2]", "--model.model.init_args.outputs=2"]


def test_a_linear_model_of_two_targets_follows_numpy_step_by_step(train, tmp_path):
    path, x, y = two_targets(tmp_path)
    run = train(*flags(path), "--model.learning_rate=0.1", "--trainer.max_steps=20", config=CSV)
    assert run.exit_code == 0, run.stderr
    # The same update in float64: the loss is the mean over all N x 2 target values.
    weight, bias = np.zeros((3, 2)), np.zeros(2)
    losses = []
    for _ in range(20):
        error = x @ weight + bias - y
        losses.append((error**2).mean())
        weight -= 0.1 * 2 * x.T @ error / error.size
        bias -= 0.1 * 2 * error.sum(axis=0) / error.size
    logged = [value for _, value in run.scalars("train/loss")]
    assert logged == pytest.approx(losses, rel=1e-5)
    assert np.array(run.summary["params"]["weight"]) == pytest.approx(weight, rel=1e-4, abs=1e-6)
    assert run.summary["params"]["bias"] == pytest.approx(bias.tolist(), rel=1e-4, abs=1e-6)


def test_two_targets_converge_to_least_squares_with_metrics_per_target(train, tmp_path):
    path, x, y = two_targets(tmp_path)
    run = train(*flags(path), "--model.learning_rate=auto", "--trainer.max_steps=4000", config=CSV)
    assert run.exit_code == 0, run.stderr
    design = np.column_stack([x, np.ones(len(x))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)  # (4, 2): one column per target
    params = run.summary["params"]
    assert np.array(params["weight"]) == pytest.approx(solution[:3], rel=1e-3, abs=1e-4)
    assert params["bias"] == pytest.approx(solution[3].tolist(), rel=1e-3, abs=1e-4)
    # The metrics, computed here from the run's own parameters.
    prediction = x @ np.array(params["weight"]) + np.array(params["bias"])
    metrics = run.summary["metrics"]["train"]
    for j, name in enumerate(["y", "y2"]):
        error = prediction[:, j] - y[:, j]
        r2 = 1 - (error**2).sum() / ((y[:, j] - y[:, j].mean()) ** 2).sum()
        assert metrics[f"{name}/mse"] == pytest.approx((error**2).mean(), rel=1e-5)
        assert metrics[f"{name}/mae"] == pytest.approx(np.abs(error).mean(), rel=1e-5)
        assert metrics[f"{name}/r2"] == pytest.approx(r2, rel=1e-5)
    assert metrics["mse"] == pytest.approx(((prediction - y) ** 2).mean(), rel=1e-5)  # over both targets
    assert metrics["rmse"] == pytest.approx(np.mean([metrics["y/rmse"], metrics["y2/rmse"]]), rel=1e-9)
    assert metrics["r2"] == pytest.approx(np.mean([metrics["y/r2"], metrics["y2/r2"]]), rel=1e-9)
    assert run.scalars("metrics/train/y2/mse")[0][1] == pytest.approx(metrics["y2/mse"], rel=1e-6)
    # load_run and predict.py give one value per target, for the raw table.
    model = load_run(run.run_dir)
    assert model.target_names == ["y", "y2"]
    with torch.no_grad():
        predicted = model(torch.tensor(x, dtype=torch.float32)).double().numpy()
    assert predicted == pytest.approx(prediction, rel=1e-4, abs=1e-4)
    output = tmp_path / "predicted.csv"
    assert predict_main(["--run", str(run.run_dir), "--input", str(THREE), "--output", str(output)]) == 0
    with output.open() as file:
        table = list(csv.DictReader(file))
    assert list(table[0]) == ["x1", "x2", "x3", "y", "prediction_y", "prediction_y2"]
    written = np.array([[float(row["prediction_y"]), float(row["prediction_y2"])] for row in table])
    assert written == pytest.approx(prediction, rel=1e-4, abs=1e-4)


def test_the_outputs_follow_the_targets_and_a_number_that_disagrees_is_one_error_line(train, tmp_path):
    path, _, _ = two_targets(tmp_path)
    flags = (f"--data.init_args.path={path}", "--data.init_args.y=[y, y2]")
    line = assert_clean_error(train(*flags, "--model.model.init_args.outputs=1", config=CSV))
    assert line == (
        "error: model.model.init_args.outputs is 1, but the data has 2 targets (y, y2); leave it out to take the data's"
    )
    run = train(*flags, "--trainer.max_steps=5", config=CSV)  # csv.yaml names no outputs: the data's 2
    assert run.exit_code == 0, run.stderr
    assert len(run.summary["params"]["bias"]) == 2


def test_a_model_not_sized_by_the_data_with_the_wrong_outputs_is_one_error_line(train, tmp_path):
    path, _, _ = two_targets(tmp_path)
    linear = ("--model.model=torch.nn.Linear", "--model.model.init_args.in_features=3",
              "--model.model.init_args.out_features=1")  # fmt: skip
    run = train(f"--data.init_args.path={path}", "--data.init_args.y=[y, y2]", *linear, config=CSV)
    line = assert_clean_error(run, "model.model:", "output of shape (4, 1)", "expected (4, 2)")
    assert "2 targets" in line


def test_an_mlp_of_three_targets_trains_and_reports_each(train, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, size=(80, 2))
    y = np.column_stack([np.sin(x[:, 0]), np.cos(x[:, 1]), x[:, 0] * x[:, 1]])
    path = tmp_path / "three.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,s,c,p", comments="", fmt="%.6f")
    run = train(f"--data.init_args.path={path}", "--data.init_args.x=[a, b]", "--data.init_args.y=[s, c, p]",
                "--model.model=gd_torch.models.MLP", "--model.model.init_args.features=2",
                "--model.model.init_args.outputs=3", "--model.optimizer=torch.optim.Adam",
                "--model.learning_rate=0.01", "--trainer.max_steps=600", config=CSV)  # fmt: skip
    assert run.exit_code == 0, run.stderr
    metrics = run.summary["metrics"]["train"]
    assert {f"{t}/r2" for t in "scp"} <= set(metrics)
    assert all(metrics[f"{t}/r2"] > 0.8 for t in "scp"), metrics


@pytest.mark.slow  # two real processes
def test_two_processes_follow_one_with_two_targets(train, tmp_path):
    # The mean is over every target value: each process counts its shard's points x targets.
    path, _, _ = two_targets(tmp_path)
    args = ("--config", str(CSV), *flags(path), "--model.learning_rate=0.1", "--trainer.max_steps=20",
            "--curvature.enabled=true")  # fmt: skip
    ddp = run_command(*args, "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
                      save_dir=tmp_path / "ddp")  # fmt: skip
    assert ddp.exit_code == 0, ddp.stderr
    one = train(*args[2:], config=CSV)
    assert one.exit_code == 0, one.stderr
    two_processes, one_process = ddp.scalars("train/loss"), one.scalars("train/loss")
    assert [step for step, _ in two_processes] == list(range(20))
    assert [v for _, v in two_processes] == pytest.approx([v for _, v in one_process], rel=1e-6)
    assert ddp.summary["curvature"] == pytest.approx(one.summary["curvature"], rel=1e-9)
    assert ddp.summary["params"]["bias"] == pytest.approx(one.summary["params"]["bias"], rel=1e-6)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--data.init_args.x=[x1, y]"], ("x and y both name the column 'y'; a column is a feature or a target",)),
        (["--data.init_args.y=[]"], ("y must name at least one column",)),
        (["--data.init_args.y=[y, y3]"], ("data.init_args.y:", "has no column 'y3'")),
    ],
)
def test_bad_target_columns_are_one_error_line(train, flags, words):
    assert_clean_error(train(*flags, config=CSV), *words)


def test_x_left_out_is_every_column_but_the_targets(train, tmp_path):
    path, _, _ = two_targets(tmp_path)
    run = train(f"--data.init_args.path={path}", "--data.init_args.x=null", "--data.init_args.y=y2",
                "--model.model.init_args.features=4", "--trainer.max_steps=3", config=CSV)  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert load_run(run.run_dir).feature_names == ["x1", "x2", "x3", "y"]  # the other target is a feature here


@pytest.mark.parametrize("outputs", [1, 2])
def test_a_standardized_linear_model_of_several_targets_in_the_datas_units(outputs):
    from torch import nn

    from gd_torch.models import LinearRegression, in_data_units

    torch.manual_seed(0)
    mean, std = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([2.0, 0.5, 4.0])
    x = torch.randn(6, 3) * std + mean
    for model in (LinearRegression(3, outputs), nn.Linear(3, outputs)):
        for parameter in model.parameters():
            nn.init.normal_(parameter)
        raw = in_data_units(model, mean, std)
        with torch.no_grad():
            expected = model((x - mean) / std).double()
        weight = raw["weight"].T if isinstance(model, nn.Linear) else raw["weight"]
        assert (x.double() @ weight + raw["bias"]).numpy() == pytest.approx(expected.numpy(), abs=1e-5)
        assert raw["weight"].shape == model.weight.shape and raw["bias"].shape == model.bias.shape
