"""Tables larger than memory, streamed (TablePoints(chunk_rows=N)): a full-batch run over chunks equals the
run of the same table in memory and a float64 NumPy run of the same update; its split, statistics and
measurements are the in-memory ones; mini-batches resume mid-epoch bit for bit; a bad cell is named as
in memory; two processes equal one."""

import json
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import gd_torch
from gd_torch.data import TablePoints
from gd_torch.streams import Blocks

from conftest import REPO, assert_clean_error, command, run_dirs, scalars

CSV_CONFIG = REPO / "configs" / "csv.yaml"
STEPS, RATE = 20, 0.1


def table(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """y = 1.5 x1 - 2 x2 + 0.5 x3 + 3 + noise, and a category that shifts it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    color = np.array(["red", "blue", "green"])[rng.integers(0, 3, size=n)]
    y = x @ np.array([1.5, -2.0, 0.5]) + 3 + (color == "red") + rng.normal(scale=0.1, size=n)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "color": color, "y": y.astype(np.float32)})


def as_parquet(tmp_path, frame: pd.DataFrame, row_group_size: int = 128, name: str = "t.parquet") -> str:
    path = tmp_path / name
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return str(path)


def fit(tmp_path, path: str, *flags: str):
    settings = (f"--data.init_args.path={path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
                f"--trainer.max_steps={STEPS}", f"--model.learning_rate={RATE}",
                "--trainer.val_check_interval=5")  # fmt: skip
    return gd_torch.fit(CSV_CONFIG, *settings, *flags)


def numpy_descent(x: np.ndarray, y: np.ndarray, steps: int, rate: float) -> tuple[list[float], np.ndarray]:
    """Full-batch descent on the mean squared error from zeros, in float64: the loss before each update
    and the final weights and bias."""
    w, b, losses = np.zeros(x.shape[1]), 0.0, []
    for _ in range(steps):
        error = x @ w + b - y
        losses.append(float(np.mean(error**2)))
        w, b = w - rate * 2 * x.T @ error / len(y), b - rate * 2 * error.mean()
    return losses, np.append(w, b)


def test_a_streamed_full_batch_run_is_the_in_memory_run_and_numpys(tmp_path):
    frame = table()
    path = as_parquet(tmp_path, frame)
    held = fit(tmp_path, path, "--data.init_args.x=[x1, x2, x3]")
    streamed = fit(tmp_path, path, "--data.init_args.x=[x1, x2, x3]", "--data.init_args.chunk_rows=300")
    assert held.exit_code == streamed.exit_code == 0
    for tag in ("train/loss", "params/bias"):
        assert [v for _, v in streamed.history[tag]] == pytest.approx([v for _, v in held.history[tag]], rel=1e-5)
    assert streamed.summary["params"]["weight"] == pytest.approx(held.summary["params"]["weight"], rel=1e-5)
    losses, params = numpy_descent(frame[["x1", "x2", "x3"]].to_numpy(float), frame["y"].to_numpy(float), STEPS, RATE)
    assert [v for _, v in streamed.history["train/loss"]] == pytest.approx(losses, rel=1e-5)
    assert [*streamed.summary["params"]["weight"], streamed.summary["params"]["bias"]] == pytest.approx(
        params, rel=1e-5
    )


@pytest.mark.parametrize("chunk_rows", ["null", "300"], ids=["in memory", "streamed"])
def test_in_float64_a_table_run_is_numpys_to_its_rounding(tmp_path, chunk_rows):
    """Under --trainer.precision 64-true the points reach the model as Lightning hands it a batch, in
    float64: the step, the final loss, the metrics and val/loss. Before: the streamed step, and the final
    loss of a table in memory, met the float64 model with float32 points and the run failed."""
    frame = table()
    path = as_parquet(tmp_path, frame)
    run = fit(tmp_path, path, "--data.init_args.x=[x1, x2, x3]", f"--data.init_args.chunk_rows={chunk_rows}",
              "--data.init_args.val_fraction=0.2", "--data.init_args.standardize=true",
              "--trainer.precision=64-true")  # fmt: skip
    assert run.exit_code == 0
    data = TablePoints(path, ["x1", "x2", "x3"], "y", val_fraction=0.2)  # the float32 table, split, as read
    data.setup("fit")
    (x, y), (xv, yv) = ((t.double().numpy() for t in data.splits[name]) for name in ("train", "val"))
    mean, std = x.mean(axis=0), x.std(axis=0)  # standardized in float64 too (before: in float32)
    x, xv = (x - mean) / std, (xv - mean) / std
    losses, params = numpy_descent(x, y, STEPS, RATE)
    assert [v for _, v in run.history["train/loss"]] == pytest.approx(losses, rel=1e-7)  # TensorBoard's float32
    assert [*run.summary["params"]["weight"], run.summary["params"]["bias"]] == pytest.approx(params, rel=1e-12)
    error = x @ params[:3] + params[3] - y
    assert run.summary["final_loss"] == pytest.approx(np.mean(error**2), rel=1e-12)
    assert run.summary["metrics"]["val"]["mse"] == pytest.approx(
        np.mean((xv @ params[:3] + params[3] - yv) ** 2), rel=1e-12
    )


EXACT = [16777217.0, 16777219.0, 100000001.0, 0.1]  # float32 makes these 16777216, 16777220, 1e8, 0.1000000015


@pytest.mark.parametrize(
    "kind",
    ["csv", "parquet", "parquet streamed", "feather", "npy", "npy streamed", "dataframe"],
)
def test_under_64_true_a_table_is_read_in_float64_every_digit_kept(tmp_path, kind):
    """Before: read into float32 first, then converted: the run trained on 16777216 for 16777217."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = np.resize(EXACT, 40) + np.arange(40) * 1e-3
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": y})
    path = tmp_path / f"t.{kind.split()[0]}"
    if kind == "csv":
        frame.to_csv(path, index=False, float_format="%.17g")
    elif kind.startswith("parquet"):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=16)
    elif kind == "feather":
        frame.to_feather(path)
    elif kind.startswith("npy"):
        np.save(path, frame.to_records(index=False))  # a structured array: its fields are the columns
    flags = ["--data.init_args.x=[x1, x2]", "--data.init_args.y=y",
             "--trainer.precision=64-true", f"--trainer.logger.init_args.save_dir={tmp_path}",
             f"--trainer.max_steps={STEPS}", f"--model.learning_rate={RATE}"]  # fmt: skip
    if kind.endswith("streamed"):
        flags.append("--data.init_args.chunk_rows=16")
    if kind == "dataframe":
        run = gd_torch.fit(CSV_CONFIG, *flags, data=frame)
    else:
        run = gd_torch.fit(CSV_CONFIG, f"--data.init_args.path={path}", *flags)
    assert run.exit_code == 0
    losses, params = numpy_descent(x, y, STEPS, RATE)
    error = x @ params[:2] + params[2] - y
    assert run.summary["final_loss"] == pytest.approx(np.mean(error**2), rel=1e-13)
    assert [*run.summary["params"]["weight"], run.summary["params"]["bias"]] == pytest.approx(params, rel=1e-12)


@pytest.mark.cuda
@pytest.mark.parametrize("batch_size", ["null", "64"])
def test_a_streamed_run_on_cuda_is_the_cpu_run(tmp_path, batch_size):
    """Chunks copied to the GPU from pinned memory without waiting, standardized there: the run the CPU
    makes, for full batch and for shuffled mini-batches."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    path = as_parquet(tmp_path, table())
    flags = ("--data.init_args.x=[x1, x2, x3, color]", "--data.init_args.categorical=[color]",
             "--data.init_args.standardize=true", "--data.init_args.val_fraction=0.2",
             "--data.init_args.chunk_rows=300", f"--data.init_args.batch_size={batch_size}")  # fmt: skip
    gpu = fit(tmp_path / "gpu", path, *flags, "--trainer.accelerator=cuda")
    cpu = fit(tmp_path / "cpu", path, *flags, "--trainer.accelerator=cpu")
    assert gpu.exit_code == cpu.exit_code == 0
    assert gpu.summary["device"] == "cuda:0" and cpu.summary["device"] == "cpu"
    for tag in ("train/loss", "val/loss"):
        assert [s for s, _ in gpu.history[tag]] == [s for s, _ in cpu.history[tag]]
        assert [v for _, v in gpu.history[tag]] == pytest.approx([v for _, v in cpu.history[tag]], rel=1e-5)
    assert gpu.summary["params"]["weight"] == pytest.approx(cpu.summary["params"]["weight"], rel=1e-5, abs=1e-6)


def test_split_statistics_categories_and_measurements_are_the_in_memory_ones(tmp_path, capsys):
    frame = table()
    frame.loc[[5, 300, 777], "x2"] = np.nan  # dropped: the split is over the rows kept, as in memory
    path = as_parquet(tmp_path, frame)
    flags = ("--data.init_args.x=[x1, x2, x3, color]", "--data.init_args.categorical=[color]",
             "--data.init_args.missing=drop", "--data.init_args.val_fraction=0.2", "--data.init_args.test_fraction=0.1",
             "--data.init_args.standardize=true")  # fmt: skip
    held = fit(tmp_path, path, *flags)
    streamed = fit(tmp_path, path, *flags, "--data.init_args.chunk_rows=250")
    assert held.exit_code == streamed.exit_code == 0
    assert streamed.model.schema == held.model.schema  # the categories, learned from the training rows
    assert torch.equal(streamed.model.x_mean, held.model.x_mean)
    assert torch.equal(streamed.model.x_std, held.model.x_std)
    assert streamed.summary["final_loss"] == pytest.approx(held.summary["final_loss"], rel=1e-5)
    for split in ("train", "val", "test"):
        assert streamed.summary["metrics"][split] == pytest.approx(held.summary["metrics"][split], rel=1e-5)
    assert [v for _, v in streamed.history["val/loss"]] == pytest.approx(
        [v for _, v in held.history["val/loss"]], rel=1e-5
    )
    assert capsys.readouterr().out.count("path: 3 of 1000 rows dropped (a missing cell), 997 kept") == 2


def test_a_category_only_in_dropped_rows_trains_streamed_as_in_memory(tmp_path):
    """Before: streamed, the rows missing: drop leaves out were still looked at for unseen categories
    ("categories the training split does not have: row 6, column 'color': 'purple'"); in memory it trained."""
    frame = table()
    frame.loc[[5, 300, 777], "x2"] = np.nan
    frame.loc[[5, 777], "color"] = "purple"  # only in rows dropped for their missing x2
    path = as_parquet(tmp_path, frame)
    flags = ("--data.init_args.x=[x1, x2, x3, color]", "--data.init_args.categorical=[color]",
             "--data.init_args.missing=drop", "--data.init_args.val_fraction=0.2")  # fmt: skip
    held = fit(tmp_path, path, *flags)
    streamed = fit(tmp_path, path, *flags, "--data.init_args.chunk_rows=250")
    assert held.exit_code == streamed.exit_code == 0
    assert streamed.model.schema == held.model.schema
    assert held.model.schema.categories["color"] == ["blue", "green", "red"]
    assert streamed.summary["final_loss"] == pytest.approx(held.summary["final_loss"], rel=1e-5)


def test_a_memory_mapped_npy_streams_as_parquet_does(tmp_path):
    frame = table()[["x1", "x2", "x3", "y"]]
    np.save(tmp_path / "t.npy", frame.to_records(index=False))
    by_npy = fit(tmp_path, str(tmp_path / "t.npy"), "--data.init_args.x=null", "--data.init_args.chunk_rows=300")
    by_parquet = fit(
        tmp_path, as_parquet(tmp_path, frame), "--data.init_args.x=null", "--data.init_args.chunk_rows=300"
    )
    assert by_npy.summary["params"] == by_parquet.summary["params"]


def test_streamed_minibatches_resume_mid_epoch_bit_for_bit(tmp_path):
    path = as_parquet(tmp_path, table())
    flags = ("--data.init_args.x=[x1, x2, x3]", "--data.init_args.chunk_rows=200", "--data.init_args.batch_size=64",
             "--trainer.logger.init_args.name=batches")  # fmt: skip
    straight = fit(tmp_path, path, *flags, "--trainer.max_steps=40")
    cut = fit(tmp_path, path, *flags, "--trainer.max_steps=23")  # 16 batches an epoch: mid-epoch 2
    resumed = fit(tmp_path, path, *flags, "--trainer.max_steps=40", f"--ckpt_path={cut.run_dir}/checkpoints/last.ckpt")
    assert straight.exit_code == cut.exit_code == resumed.exit_code == 0
    assert resumed.summary["params"] == straight.summary["params"]  # the very batches it would have drawn
    assert [v for s, v in resumed.history["train/loss"] if s >= 23] == [
        v for s, v in straight.history["train/loss"] if s >= 23
    ]
    # Shuffled: not the batches of the table's order (the first 64 rows), and every row once an epoch.
    first_epoch = [v for s, v in straight.history["train/loss"] if s < 16]
    assert len(set(first_epoch)) == 16


def test_a_bad_cell_of_a_streamed_table_is_named_as_in_memory(train, tmp_path):
    frame = table()[["x1", "x2", "x3", "y"]]
    frame.loc[[400, 950], "x1"] = np.nan
    frame.loc[951, "y"] = np.inf
    path = as_parquet(tmp_path, frame)
    held = train(f"--data.init_args.path={path}", config=CSV_CONFIG)
    streamed = train(f"--data.init_args.path={path}", "--data.init_args.chunk_rows=100", config=CSV_CONFIG)
    assert assert_clean_error(streamed) == assert_clean_error(held)
    assert "row 400, column 'x1': null is missing; row 950" in assert_clean_error(streamed)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--data.init_args.path=data/three_features.csv", "--data.init_args.chunk_rows=100"],
         ["data.init_args.path", "cannot be streamed", "Parquet"]),
        (["--data.init_args.chunk_rows=0"], ["data.init_args.chunk_rows must be >= 1 or null"]),
    ],
    ids=["csv", "zero"],
)  # fmt: skip
def test_what_cannot_stream_is_one_error_line(train, flags, words):
    assert_clean_error(train(*flags, config=CSV_CONFIG), *words)


def test_a_streamed_split_reads_the_rows_of_each_piece_in_order(tmp_path):
    frame = table(n=500)
    path = as_parquet(tmp_path, frame, row_group_size=37)  # pieces of 37 rows, joined and cut into chunks
    data = TablePoints(path, ["x1", "x2", "x3"], "y", chunk_rows=100)
    data.setup("fit")
    chunks = list(data.measured_splits(torch.device("cpu"))["train"].chunks())
    assert [len(y) for _, y in chunks] == [100, 100, 100, 100, 100]
    assert torch.equal(torch.cat([y for _, y in chunks]), torch.tensor(frame["y"].to_numpy()))
    # Every chunk kept while the next ones were read: none was written over by a later chunk's rows.
    assert torch.equal(torch.cat([x for x, _ in chunks]), torch.tensor(frame[["x1", "x2", "x3"]].to_numpy()))


def test_under_ddp_a_step_is_full_batch_by_one_rule_for_the_loader_and_the_bound(tmp_path):
    """Row groups of 100 and 300 rows shared out to 2 processes are shares of 100 and 300: batch_size 250
    is mini-batches (the loader's rule), and a step takes 100 + 250 points. Before: the bound called it
    full batch by ceil(400 / 2) = 200 and counted 400 points a step."""
    from types import SimpleNamespace

    from gd_torch.streamed import StreamBatches

    frame = table(n=400)[["x1", "x2", "x3", "y"]]
    path = tmp_path / "uneven.parquet"
    with pq.ParquetWriter(path, pa.Schema.from_pandas(frame, preserve_index=False)) as writer:
        for rows in (slice(0, 100), slice(100, 400)):
            writer.write_table(pa.Table.from_pandas(frame[rows], preserve_index=False))
    data = TablePoints(str(path), ["x1", "x2", "x3"], "y", chunk_rows=100, batch_size=250)
    data.setup("fit")
    assert data.shares(2) == [100, 300] and not data.full_batch(2)
    assert data.points_per_step(2) == 350
    data.trainer = SimpleNamespace(global_rank=1, world_size=2)  # the loader as the second process makes it
    assert isinstance(data.train_dataloader(), StreamBatches)
    assert data.full_batch(1) is False and data.points_per_step(1) == 250
    in_memory = TablePoints(str(path), ["x1", "x2", "x3"], "y", batch_size=250)
    in_memory.setup("fit")
    assert in_memory.shares(2) == [200, 200] and in_memory.full_batch(2) and in_memory.points_per_step(2) == 400


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_a_table_rewritten_while_it_streams_is_one_error_not_a_mixed_run(tmp_path, suffix):
    """Before: the next pass read the new file's rows into the run as if nothing had happened (or, a
    Parquet file cut short under its memory map, SIGBUS)."""
    path = tmp_path / f"t{suffix}"

    def write(n: int) -> None:
        if suffix == ".npy":
            np.save(path, np.column_stack([np.arange(n, dtype=np.float32)] * 2))
        else:
            pq.write_table(pa.table({"0": np.arange(n, dtype=np.float32), "1": np.arange(n, dtype=np.float32)}), path)

    write(100)
    data = TablePoints(str(path), "0", "1", chunk_rows=40)
    data.setup("fit")
    split = data.measured_splits(torch.device("cpu"))["train"]
    assert sum(len(y) for _, y in split.chunks()) == 100
    write(120)
    with pytest.raises(ValueError, match=f"path: {path} changed while the run streamed it"):
        next(split.chunks())


def test_a_pass_reuses_the_block_of_a_chunk_let_go():
    blocks = Blocks()
    kept = torch.from_numpy(blocks.empty((3, 5))).T  # a view, as a chunk's x is
    other = blocks.empty((3, 5))
    assert not np.shares_memory(other, kept.numpy())  # still viewed: not handed out again
    address = kept.data_ptr()
    del kept
    assert blocks.empty((3, 5)).__array_interface__["data"][0] == address  # let go: handed out again


@pytest.mark.slow
def test_two_streamed_processes_follow_one(tmp_path):
    path = as_parquet(tmp_path, table(n=999))
    flags = ("--config", str(CSV_CONFIG), f"--data.init_args.path={path}", "--data.init_args.x=[x1, x2, x3]",
             "--data.init_args.chunk_rows=100", "--data.init_args.val_fraction=0.2", f"--trainer.max_steps={STEPS}",
             f"--model.learning_rate={RATE}", "--trainer.val_check_interval=5")  # fmt: skip
    ddp = ("--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu")
    argv = command(*flags, *ddp, save_dir=tmp_path / "ddp")
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Training on cpu, 2 processes" in done.stdout
    one = gd_torch.fit(*flags[1:], f"--trainer.logger.init_args.save_dir={tmp_path / 'one'}")
    (run_dir,) = run_dirs(tmp_path / "ddp")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["params"]["weight"] == pytest.approx(one.summary["params"]["weight"], rel=1e-5)
    for tag in ("train/loss", "val/loss"):
        two = scalars(run_dir, tag)
        assert [s for s, _ in two] == [s for s, _ in one.history[tag]]  # each step written once
        assert [v for _, v in two] == pytest.approx([v for _, v in one.history[tag]], rel=1e-5)
