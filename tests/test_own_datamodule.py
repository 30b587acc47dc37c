"""A LightningDataModule of one's own (DataLoaders over TensorDatasets) trains from the command and from
gd_torch.fit: the same loop, its final loss and metrics equal to NumPy's over the same points, and a
float64 NumPy run of the same full-batch descent; what it lacks is one error line."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from own_data import Chunks, points

import gd_torch

from conftest import REPO, assert_clean_error, command, run_dirs, scalars

STEPS, RATE = 40, 0.1


def config(tmp_path, **data) -> dict:
    return {
        "seed_everything": 0,
        "model": {"learning_rate": RATE, "reduction": "mean",
                  "model": {"class_path": "gd_torch.models.LinearRegression", "init_args": {"features": 3}}},
        "data": {"class_path": "own_data.TensorData", "init_args": data},
        "trainer": {"max_steps": STEPS, "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                                                   "init_args": {"save_dir": str(tmp_path), "name": "own"}}},
    }  # fmt: skip


def config_file(tmp_path, data_class: str | None = None, sized_by_data: bool = False) -> Path:
    """:func:`config` written as ``own.yaml``; ``data_class``: another DataModule (no init_args);
    ``sized_by_data``: the model's features left to the data."""
    settings = config(tmp_path)
    if data_class is not None:
        settings["data"] = {"class_path": data_class}
    if sized_by_data:
        del settings["model"]["model"]["init_args"]
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def numpy_descent(x: np.ndarray, y: np.ndarray, steps: int, rate: float, divisor: int) -> tuple[np.ndarray, float]:
    """Full-batch gradient descent on the squared error (divided by ``divisor``: N for the mean, 1 for
    the sum) from LinearRegression's zeros, in float64."""
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        error = x @ w + b - y
        w, b = w - rate * 2 * x.T @ error / divisor, b - rate * 2 * error.sum() / divisor
    return w, b


def numpy_metrics(x, y, w, b) -> dict:
    error = x @ w + b - y
    mse = float(np.mean(error**2))
    return {"mse": mse, "rmse": mse**0.5, "mae": float(np.mean(np.abs(error))),
            "r2": 1 - float(np.sum(error**2) / np.sum((y - y.mean()) ** 2))}  # fmt: skip


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_an_own_datamodule_trains_from_the_command_like_numpy(train, tmp_path, reduction):
    path = config_file(tmp_path)
    rate = RATE if reduction == "mean" else RATE / 300
    run = train(f"--model.reduction={reduction}", f"--model.learning_rate={rate}", config=path)
    assert run.exit_code == 0, run.stderr
    x, y = (t.double().numpy() for t in points(300, seed=1))
    w, b = numpy_descent(x, y, STEPS, rate, 300 if reduction == "mean" else 1)
    params = run.summary["params"]
    assert params["weight"] == pytest.approx(w.tolist(), rel=1e-5)
    assert params["bias"] == pytest.approx(b, rel=1e-5)
    w32, b32 = np.array(params["weight"]), params["bias"]  # the metrics at the run's own parameters
    want = numpy_metrics(x, y, w32, b32)
    assert run.summary["final_loss"] == pytest.approx(want["mse"] * (1 if reduction == "mean" else 300), rel=1e-6)
    assert run.summary["metrics"]["train"] == pytest.approx(want, rel=1e-6)
    xv, yv = (t.double().numpy() for t in points(100, seed=2))
    assert run.summary["metrics"]["val"] == pytest.approx(numpy_metrics(xv, yv, w32, b32), rel=1e-6)
    assert [s for s, _ in run.scalars("train/loss")] == list(range(STEPS))
    # val/loss over both of the val_dataloader's batches (64 + 36 points), at the parameters after 10 steps.
    w10, b10 = numpy_descent(x, y, 10, rate, 300 if reduction == "mean" else 1)
    val_mse = numpy_metrics(xv, yv, w10, b10)["mse"]
    step, value = run.scalars("val/loss")[0]
    assert step == 10 and value == pytest.approx(val_mse * (1 if reduction == "mean" else 100), rel=1e-5)
    assert (run.run_dir / "checkpoints" / "last.ckpt").is_file()


def test_a_datamodule_made_in_a_notebook_is_handed_to_fit(tmp_path, train):
    """``gd_torch.fit(config, data=module)``. Before: "data: a table is a pandas or polars DataFrame, ...;
    got a TensorData"."""
    from own_data import TensorData

    run = gd_torch.fit(config(tmp_path / "fit"), data=TensorData(val=0))
    assert run.exit_code == 0
    x, y = (t.double().numpy() for t in points(300, seed=1))
    w, b = numpy_descent(x, y, STEPS, RATE, 300)
    assert run.summary["params"]["weight"] == pytest.approx(w.tolist(), rel=1e-5)
    assert run.summary["final_loss"] == pytest.approx(numpy_metrics(x, y, w, b)["mse"], rel=1e-5)
    line = assert_clean_error(train("--data=gd_torch.data.HandedDataModule", save_dir=tmp_path / "none"))
    assert line.startswith("error: data: gd_torch.data.HandedDataModule stands for a DataModule handed to")


def test_an_own_datamodule_trains_from_fit_in_shuffled_minibatches(tmp_path):
    run = gd_torch.fit(config(tmp_path, batch_size=32, shuffle=True), "--trainer.max_steps=400")
    assert run.exit_code == 0
    x, y = (t.double().numpy() for t in points(300, seed=1))
    # Every training point counts in the final loss, whatever the batches: NumPy's over all 300.
    want = numpy_metrics(x, y, np.array(run.summary["params"]["weight"]), run.summary["params"]["bias"])
    assert run.summary["final_loss"] == pytest.approx(want["mse"], rel=1e-6)
    solution, *_ = np.linalg.lstsq(np.column_stack([x, np.ones(300)]), y, rcond=None)
    assert run.summary["params"]["weight"] == pytest.approx(solution[:3].tolist(), abs=0.02)
    with torch.no_grad():
        assert run.model(torch.zeros(1, 3)).item() == pytest.approx(run.summary["params"]["bias"], abs=1e-7)


def test_measuring_a_shuffled_datamodule_draws_nothing_from_the_runs_random_streams(tmp_path):
    """The check's first batch and the curvature read the DataModule's points in order, so the shuffled
    training is the same with the curvature and without."""
    settings = config(tmp_path, batch_size=32, shuffle=True)
    runs = [gd_torch.fit(settings, "--trainer.max_steps=30", f"--curvature.enabled={on}") for on in ("true", "false")]
    assert runs[0].summary.get("curvature") and not runs[1].summary.get("curvature")
    assert runs[0].summary["params"] == runs[1].summary["params"]


def test_the_command_sets_an_own_datamodule_up_once(tmp_path):
    from gd_torch.command import build

    path = config_file(tmp_path)
    cli = build(["--config", str(path)])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.datamodule.setups == 1


@pytest.mark.parametrize(
    "data, words",
    [
        ("own_data.NoTraining", ["NoTraining cannot be set up", "no train_dataloader()"]),
        ("own_data.Dicts", ["the train_dataloader of Dicts yields a dict; it must yield (x, y)"]),
        # before: "training failed: GradientDescent.loss() takes 3 positional arguments but 4 were given"
        ("own_data.Weighted", ["the train_dataloader of Weighted yields 3 items a batch; it must yield (x, y)"]),
        # before: "training failed: addmv input tensors must have the same dtype, but got Float, Long, and Float"
        ("own_data.Counts", ["yields x of dtype torch.int64; the model takes floating-point tensors", "x.float()"]),
        # before: "training failed: addmv input tensors must have the same dtype, but got Float, Double, and Float"
        (
            "own_data.Doubles",
            [
                "yields x of dtype torch.float64, and the model trains in float32 (trainer.precision 32-true)",
                "(x.float())",
                "--trainer.precision 64-true",
            ],
        ),
        # before: "TwoLoaders has no train_dataloader()"
        ("own_data.TwoLoaders", ["the train_dataloader of TwoLoaders gives 2 dataloaders (a list, which Lightning"]),
    ],
    ids=["no train dataloader", "dicts", "three items", "integers", "float64 in float32", "two loaders"],
)
def test_what_an_own_datamodule_lacks_is_one_error_line(train, tmp_path, data, words):
    path = config_file(tmp_path, data)
    name = data.split(".")[1]
    assert_clean_error(train(config=path), f"error: data: {name} cannot be set up: ", *words)


@pytest.mark.parametrize("data", ["own_data.TensorData", "own_data.Doubles"], ids=["float32", "float64"])
def test_under_64_true_an_own_datamodule_trains_in_float64_like_numpy(train, tmp_path, data):
    """Before: the final metrics, outside Lightning's loop, met the float64 model with the val_dataloader's
    float32 batches, and the run failed at its end."""
    path = config_file(tmp_path, data)
    run = train("--trainer.precision=64-true", config=path)
    assert run.exit_code == 0, run.stderr
    x, y = (t.double().numpy() for t in points(300, seed=1))
    w, b = numpy_descent(x, y, STEPS, RATE, 300)
    assert run.summary["params"]["weight"] == pytest.approx(w.tolist(), rel=1e-12)
    assert run.summary["params"]["bias"] == pytest.approx(b, rel=1e-12)
    xv, yv = (t.double().numpy() for t in points(100, seed=2))
    assert run.summary["metrics"]["val"] == pytest.approx(numpy_metrics(xv, yv, w, b), rel=1e-10)


def test_a_datamodule_over_an_iterabledataset_trains_and_says_what_its_bound_is_of(train, tmp_path, recwarn):
    """Whole batches from an IterableDataset (batch_size=None): the step's size is the loader's own.
    Before: the run failed as it started ("unsupported format string passed to NoneType.__format__")."""
    path = config_file(tmp_path, "own_data.Streaming")
    run = train(config=path)
    assert run.exit_code == 0, run.stderr
    assert "of one step's loss, the mean over one of its batches, estimated on the first 320 training points" in (
        run.stdout
    )
    x, y = (torch.cat(parts).double().numpy() for parts in zip(*Chunks(), strict=True))
    weight, bias = np.array(run.summary["params"]["weight"]), run.summary["params"]["bias"]
    assert run.summary["final_loss"] == pytest.approx(numpy_metrics(x, y, weight, bias)["mse"], rel=1e-6)
    # No val split is a run without val/loss, as the page says; Lightning's notice of it is not shown.
    assert not [w for w in recwarn if "have no `val_dataloader`" in str(w.message)]


def test_a_fraction_of_an_iterabledatasets_batches_is_one_error_line(train, tmp_path):
    """Before: "training failed: When using an `IterableDataset`, `Trainer(limit_train_batches)` must be
    `1.0` or an int", from a run already in its directory."""
    path = config_file(tmp_path, "own_data.Streaming")
    line = assert_clean_error(train("--trainer.limit_train_batches=0.5", config=path))
    assert line.startswith("error: trainer.limit_train_batches is 0.5; the train_dataloader of Streaming has no length")


def test_targets_of_shape_n_by_1_are_one_target_like_numpy(train, tmp_path):
    """y of shape (N, 1) (``y.unsqueeze(1)``) is one target. Before: one error line, "LinearRegression maps
    the data's x of shape (4, 3) to an output of shape (4,); expected (4, 1) ... each of the 1 targets"."""
    path = config_file(tmp_path, "own_data.ColumnTargets")
    run = train(config=path)
    assert run.exit_code == 0, run.stderr
    x, y = (t.double().numpy() for t in points(300, seed=1))
    w, b = numpy_descent(x, y, STEPS, RATE, 300)
    assert run.summary["params"]["weight"] == pytest.approx(w.tolist(), rel=1e-5)
    assert run.summary["metrics"]["train"] == pytest.approx(numpy_metrics(x, y, w, b), rel=1e-5)


def test_images_are_flattened_and_counted_for_a_linear_model_like_numpy(train, tmp_path):
    """x of shape (N, 1, 4, 4): LinearRegression sized 16 from the data, on the flattened pixels. Before:
    "LinearRegression fails on the data's x of shape (4, 1, 4, 4): size mismatch ... (1 feature: x)"."""
    from own_data import Images

    path = config_file(tmp_path, "own_data.Images", sized_by_data=True)
    run = train(config=path)
    assert run.exit_code == 0, run.stderr
    data = Images()
    data.setup("fit")
    x, y = (t.double().numpy() for t in data.train_set.tensors)
    w, b = numpy_descent(x.reshape(len(x), -1), y, STEPS, RATE, len(y))
    assert len(run.summary["params"]["weight"]) == 16
    assert run.summary["params"]["weight"] == pytest.approx(w.tolist(), rel=1e-5, abs=1e-7)
    assert run.summary["params"]["bias"] == pytest.approx(b, rel=1e-5)


def test_an_own_datamodule_sizes_the_model_and_a_size_that_disagrees_is_one_error_line(train, tmp_path):
    path = config_file(tmp_path, sized_by_data=True)
    line = assert_clean_error(train("--model.model.init_args.features=5", config=path))
    assert line == (
        "error: model.model.init_args.features is 5, but the data has 3 features (x1, x2, x3);"
        " leave it out to take the data's"
    )
    run = train(config=path)
    assert run.exit_code == 0
    assert len(run.summary["params"]["weight"]) == 3


def test_a_datamodule_split_by_samplers_is_measured_on_each_samplers_points(train, tmp_path):
    """Before: the measurements rebuilt each DataLoader from its dataset and batch size, dropping the
    sampler: val/loss and the final loss were over all 400 points, train metrics equal to val's."""
    from own_data import SamplerSplit

    run = train(config=config_file(tmp_path, "own_data.SamplerSplit"))
    assert run.exit_code == 0, run.stderr
    data = SamplerSplit()
    data.setup("fit")
    x, y = (t.double().numpy() for t in data.dataset.tensors)
    train_points, val_points = data.train_points, data.val_points
    w, b = numpy_descent(x[train_points], y[train_points], STEPS, RATE, 300)
    params = run.summary["params"]
    assert params["weight"] == pytest.approx(w.tolist(), rel=1e-5) and params["bias"] == pytest.approx(b, rel=1e-5)
    w32, b32 = np.array(params["weight"]), params["bias"]
    metrics = run.summary["metrics"]
    assert metrics["train"] == pytest.approx(numpy_metrics(x[train_points], y[train_points], w32, b32), rel=1e-6)
    assert metrics["val"] == pytest.approx(numpy_metrics(x[val_points], y[val_points], w32, b32), rel=1e-6)
    assert run.summary["final_loss"] == pytest.approx(metrics["train"]["mse"], rel=1e-6)
    w10, b10 = numpy_descent(x[train_points], y[train_points], 10, RATE, 300)
    step, value = run.scalars("val/loss")[0]
    assert step == 10
    assert value == pytest.approx(numpy_metrics(x[val_points], y[val_points], w10, b10)["mse"], rel=1e-5)
    assert "estimated on" not in run.stdout  # the bound is of the whole step's loss: all 300 points


@pytest.mark.parametrize("data", ["own_data.Scaled", "own_data.Hooked"], ids=["scaled targets", "dicts made (x, y)"])
def test_lightnings_batch_hooks_are_applied_where_gd_torch_measures(train, tmp_path, data):
    """Targets scaled by on_after_batch_transfer (and dict batches made (x, y) by on_before_batch_transfer).
    Before: the hooks were skipped where gd_torch measures: trained on the scaled targets, measured on the
    raw ones (final loss 364, r2 -80); dict batches were refused."""
    from own_data import SCALE

    run = train(config=config_file(tmp_path, data))
    assert run.exit_code == 0, run.stderr
    x, y = (t.double().numpy() for t in points(300, seed=1))
    y = y * np.float32(SCALE)
    w, b = numpy_descent(x, y, STEPS, RATE, 300)
    params = run.summary["params"]
    assert params["weight"] == pytest.approx(w.tolist(), rel=1e-5)
    w32, b32 = np.array(params["weight"]), params["bias"]
    assert run.summary["final_loss"] == pytest.approx(numpy_metrics(x, y, w32, b32)["mse"], rel=1e-6)
    assert run.summary["metrics"]["train"] == pytest.approx(numpy_metrics(x, y, w32, b32), rel=1e-6)
    xv, yv = (t.double().numpy() for t in points(100, seed=2))
    assert run.summary["metrics"]["val"] == pytest.approx(numpy_metrics(xv, yv * np.float32(SCALE), w32, b32), rel=1e-6)
    assert run.scalars("train/loss")[0][1] == pytest.approx(float(np.mean(y**2)), rel=1e-6)


def test_an_own_datamodule_is_set_up_with_its_trainer_and_prepared_once(tmp_path):
    """Before: set up before a trainer existed ("'NoneType' object has no attribute 'world_size'"), and
    prepare_data ran twice in one process."""
    from own_data import Downloading

    data = Downloading(val=0)
    run = gd_torch.fit(config(tmp_path), data=data)
    assert run.exit_code == 0
    assert data.seen == (1, 0) and data.prepared == 1 and data.setups == 1
    x, y = (t.double().numpy() for t in points(300, seed=1))
    w, b = numpy_descent(x, y, STEPS, RATE, 300)
    assert run.summary["params"]["weight"] == pytest.approx(w.tolist(), rel=1e-5)


@pytest.mark.slow
def test_an_own_datamodule_on_two_processes_follows_one(tmp_path):
    """Lightning shards the DataModule's loader over the processes (its DistributedSampler); the mean's
    divisor is the global count, so 2 processes take the one-process steps. prepare_data runs once, on
    rank 0; each process's setup reads its trainer."""
    path = config_file(tmp_path, "own_data.Downloading")
    prepared = tmp_path / "prepared.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
           "OWN_DATA_PREPARED": str(prepared)}  # fmt: skip
    argv = command("--config", str(path), "--trainer.strategy=ddp", "--trainer.devices=2",
                   "--trainer.accelerator=cpu", save_dir=tmp_path / "ddp")  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert "Training on cpu, 2 processes" in done.stdout
    (run_dir,) = run_dirs(tmp_path / "ddp")
    x, y = (t.double().numpy() for t in points(300, seed=1))
    w, b = numpy_descent(x, y, STEPS, RATE, 300)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["params"]["weight"] == pytest.approx(w.tolist(), rel=1e-5)
    assert summary["final_loss"] == pytest.approx(numpy_metrics(x, y, w, b)["mse"], rel=1e-5)
    assert [s for s, _ in scalars(run_dir, "train/loss")] == list(range(STEPS))  # logged once
    assert len(prepared.read_text().splitlines()) == 1
