"""Real data and real models: the worked table of configs/real.yaml against float64 least squares,
held-out splits with val/loss and metrics, standardization, the shape check before a run, and the
trained model reused through load_run, load_from_checkpoint and scripts/predict.py."""

import json
import sys

import numpy as np
import pytest
import torch
from tensorboard.plugins.custom_scalar.layout_pb2 import Layout

from gd_torch import load_run
from gd_torch.data import CSVPoints, Points

from conftest import REPO, read_events

pytestmark = pytest.mark.xdist_group("real_run")  # one worker: the runs these tests share are made once

CONFIGS = REPO / "configs"
HOUSES = REPO / "data" / "houses.csv"
FEATURES = ["area_m2", "rooms", "age_years", "distance_km", "lot_m2", "income_eur"]
THREE_FEATURES = REPO / "data" / "three_features.csv"


def houses_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The real.yaml split of the table in its own units, as the data module makes it."""
    data = CSVPoints(str(HOUSES), FEATURES, "price_keur", val_fraction=0.15, test_fraction=0.15, seed=0)
    data.setup("fit")
    return {name: (x.double().numpy(), y.double().numpy()) for name, (x, y) in data.splits.items()}


def with_bias(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x.reshape(len(x), -1), np.ones(len(x))])


def numpy_r2(prediction: np.ndarray, y: np.ndarray) -> float:
    return 1 - np.sum((prediction - y) ** 2) / np.sum((y - y.mean()) ** 2)


@pytest.fixture(scope="session")  # once per worker, even when other files run between its tests
def real_run(tmp_path_factory):
    from gd_torch.command import main

    save_dir = tmp_path_factory.mktemp("real")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["train.py"])
        code = main(
            [
                "--config",
                str(CONFIGS / "real.yaml"),
                f"--data.init_args.path={HOUSES}",
                f"--trainer.logger.init_args.save_dir={save_dir}",
            ]
        )
    assert code == 0
    (run_dir,) = save_dir.glob("real/version_*")
    return run_dir


def test_real_yaml_reaches_the_least_squares_fit(real_run):
    splits = houses_splits()
    x, y = splits["train"]
    coefficients = np.linalg.lstsq(with_bias(x), y, rcond=None)[0]
    summary = json.loads((real_run / "summary.json").read_text())
    assert summary["stop_reason"] == "converged"
    for name, (sx, sy) in splits.items():
        best = numpy_r2(with_bias(sx) @ coefficients, sy)
        assert summary["metrics"][name]["r2"] == pytest.approx(best, abs=1e-4), name
    # The standardized model's coefficients, reported in the table's own units.
    raw = summary["params_in_data_units"]
    np.testing.assert_allclose([*raw["weight"], raw["bias"]], coefficients, rtol=1e-3)
    # The reused model takes raw rows and predicts the prices the least-squares fit does.
    table = np.loadtxt(HOUSES, delimiter=",", skiprows=1)
    model = load_run(real_run)
    with torch.no_grad():
        predicted = model(torch.tensor(table[:, :6], dtype=torch.float32)).double().numpy()
    assert np.abs(predicted - with_bias(table[:, :6]) @ coefficients).max() < 1e-3 * table[:, 6].std()


def test_the_table_is_standardized_with_the_training_splits_statistics(real_run):
    x, _ = houses_splits()["train"]
    model = load_run(real_run)
    np.testing.assert_allclose(model.x_mean.double().numpy(), x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(model.x_std.double().numpy(), x.std(axis=0), rtol=1e-6)
    assert model.feature_names == FEATURES
    assert not model.training


def test_splits_are_a_seeded_partition_in_the_original_order():
    x = [float(i) for i in range(20)]
    data = Points(x, [2 * v for v in x], val_fraction=0.25, test_fraction=0.1, seed=3)
    data.setup("fit")
    splits = {name: xs.tolist() for name, (xs, _) in data.splits.items()}
    assert [len(v) for v in splits.values()] == [13, 5, 2]
    assert sorted(sum(splits.values(), [])) == x
    assert all(v == sorted(v) for v in splits.values())
    assert all(torch.equal(ys, 2 * xs) for xs, ys in data.splits.values())
    again = Points(x, [2 * v for v in x], val_fraction=0.25, test_fraction=0.1, seed=3)
    again.setup("fit")
    other = Points(x, [2 * v for v in x], val_fraction=0.25, test_fraction=0.1, seed=4)
    other.setup("fit")
    assert {n: xs.tolist() for n, (xs, _) in again.splits.items()} == splits
    assert {n: xs.tolist() for n, (xs, _) in other.splits.items()} != splits


def test_held_out_splits_give_val_loss_and_metrics_for_each(train):
    run = train(
        "--data.init_args.standardize=true",
        "--data.init_args.val_fraction=0.2",
        "--data.init_args.test_fraction=0.2",
        "--trainer.val_check_interval=7",
        "--trainer.max_steps=70",  # ten validations
        "--trainer.callbacks=[]",
        f"--data.init_args.path={THREE_FEATURES}",
        config=CONFIGS / "csv.yaml",
    )
    assert run.exit_code == 0, run.stderr
    steps = run.summary["steps"]
    val = run.scalars("val/loss")
    assert [step for step, _ in val] == list(range(7, steps + 1, 7))
    assert set(run.summary["metrics"]) == {"train", "val", "test"}
    # val/loss at the last step is the val split's mse at the final parameters.
    if steps % 7 == 0:
        assert val[-1][1] == pytest.approx(run.summary["metrics"]["val"]["mse"], rel=1e-5)
    for split in ("train", "val", "test"):
        metrics = run.summary["metrics"][split]
        assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5)
        assert run.scalars(f"metrics/{split}/r2") == [(steps - 1, pytest.approx(metrics["r2"], rel=1e-6))]
    events = read_events(run.run_dir)
    (config,) = events.Tensors("custom_scalars__config__")
    layout = Layout.FromString(config.tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for chart in layout.category[0].chart}
    assert charts["loss"] == ["train/loss", "val/loss"]  # one chart: the two curves compare at a glance
    table = [line.split() for line in run.stdout.splitlines()]
    assert ["metrics:", "mse", "rmse", "mae", "r2"] in table
    for split in ("train", "val", "test"):
        (row,) = [cells for cells in table if cells[:1] == [split]]
        assert [float(cell) for cell in row[1:]] == pytest.approx(
            list(run.summary["metrics"][split].values()), rel=1e-5
        )


def test_the_val_split_is_the_same_after_a_resume(train):
    args = (
        "--data.init_args.val_fraction=0.3",
        "--trainer.val_check_interval=5",
        "--trainer.callbacks=[]",
        f"--data.init_args.path={THREE_FEATURES}",
        "--model.learning_rate=0.05",
    )
    first = train(*args, "--trainer.max_steps=40", config=CONFIGS / "csv.yaml")
    resumed = train(
        *args,
        "--trainer.max_steps=80",
        "--ckpt_path",
        str(first.run_dir / "checkpoints" / "last.ckpt"),
        config=CONFIGS / "csv.yaml",
    )
    whole = train(*args, "--trainer.max_steps=80", config=CONFIGS / "csv.yaml")
    assert first.exit_code == resumed.exit_code == whole.exit_code == 0
    assert resumed.scalars("val/loss") == whole.scalars("val/loss")[8:]  # steps 45, 50, ..., 80
    assert resumed.scalars("train/loss") == whole.scalars("train/loss")[40:]
    assert resumed.summary["metrics"] == whole.summary["metrics"]


EARLY_STOPPING = """
trainer:
  callbacks:
    - class_path: lightning.pytorch.callbacks.EarlyStopping
      init_args: {monitor: val/loss, patience: 3}
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {monitor: val/loss, filename: "best-{step}"}
"""


def test_early_stopping_and_the_best_checkpoint_from_the_config(train, tmp_path):
    """The MLP overfits a few noisy points: val/loss turns up, EarlyStopping ends the run, and
    load_run(checkpoint="best") gives the parameters of the lowest val/loss."""
    extra = tmp_path / "early.yaml"
    extra.write_text(EARLY_STOPPING)
    run = train(
        "--config",
        str(extra),
        "--data.init_args.path",
        str(REPO / "data" / "noisy_sine.csv"),
        "--data.init_args.val_fraction=0.5",
        "--trainer.val_check_interval=20",
        "--model.learning_rate=0.05",
        config=CONFIGS / "mlp.yaml",
    )
    assert run.exit_code == 0, run.stderr
    assert run.summary["stop_reason"] == "early_stopping"
    assert "(early_stopping)" in run.stdout
    val = run.scalars("val/loss")
    best_step, best_loss = min(val, key=lambda point: point[1])
    assert val[-1][0] == run.summary["steps"] == best_step + 3 * 20  # patience 3: three checks without improvement
    assert (run.run_dir / "checkpoints" / f"best-step={best_step}.ckpt").is_file()
    data = CSVPoints(str(REPO / "data" / "noisy_sine.csv"), "x", "y", val_fraction=0.5)
    data.setup("fit")
    x, y = data.splits["val"]
    with torch.no_grad():
        best_mse = torch.nn.functional.mse_loss(load_run(run.run_dir, checkpoint="best")(x), y).item()
        last_mse = torch.nn.functional.mse_loss(load_run(run.run_dir)(x), y).item()
    assert best_mse == pytest.approx(best_loss, rel=1e-5)
    assert last_mse == pytest.approx(val[-1][1], rel=1e-5) and last_mse > best_mse


def test_a_constant_feature_cannot_be_standardized(train, tmp_path):
    table = tmp_path / "constant.csv"
    table.write_text("x1,x2,x3,y\n" + "".join(f"{i},2.5,{i * i},{i}\n" for i in range(6)))
    run = train(f"--data.init_args.path={table}", "--data.init_args.standardize=true", config=CONFIGS / "csv.yaml")
    assert run.exit_code == 2
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: data.init_args.standardize:")
    assert "'x2' is constant (2.5)" in line
    assert run.run_dirs == []
