"""The curvature is that of the loss one step minimizes, for every model, reduction, batch size, subset
and number of processes: the largest eigenvalue a run reports equals a float64 Hessian (torch.func) of
exactly that loss, measured on the same points; and for the linear models the bound it gives predicts
what descent does (0.9x converges, 1.1x diverges)."""

import itertools
import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from torch.func import functional_call, jacrev

from gd_torch.models import Line, LinearRegression

from conftest import REPO

N, BATCH, MEASURED, GROUP = 3000, 200, 1000, 250  # points, a mini-batch, a subset, a Parquet row group
MODELS = {  # the model section, and the columns it takes
    "Line": ({"class_path": "gd_torch.models.Line"}, ["a"]),
    "LinearRegression": ({"class_path": "gd_torch.models.LinearRegression"}, ["a", "b", "c"]),
    "MLP": ({"class_path": "gd_torch.models.MLP", "init_args": {"hidden": [32]}}, ["a", "b", "c"]),  # 161 values
}


@dataclass(frozen=True)
class Case:
    model: str
    reduction: str
    batch: int | None  # None: full batch
    streamed: bool  # streamed: the Hessian on a seeded subset of MEASURED points; else on all of them

    def __str__(self) -> str:
        batch, points = "mini" if self.batch else "full", "subset" if self.streamed else "all"
        return f"{self.model}-{self.reduction}-{batch}-{points}"


CASES = [Case(*values) for values in itertools.product(MODELS, ("mean", "sum"), (None, BATCH), (False, True))]
# The quick loop keeps the cases a subset or a mini-batch makes wrong for the sum; the rest run in the full suite.
QUICK = {"Line-sum-mini-all", "LinearRegression-sum-full-subset", "MLP-sum-mini-subset", "MLP-mean-full-all"}


def as_param(case: Case, quick: set[str] = QUICK):
    return pytest.param(case, id=str(case), marks=() if str(case) in quick else pytest.mark.slow)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """y = 1.5 a - 2 b + 0.5 c + 3 + sin(2a) + noise, as a Parquet file of row groups (a stream's pieces)."""
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, N)).astype(np.float32)
    y = 1.5 * a - 2 * b + 0.5 * c + 3 + np.sin(2 * a) + rng.normal(scale=0.1, size=N)
    frame = pd.DataFrame({"a": a, "b": b, "c": c, "y": y.astype(np.float32)})
    path = tmp_path_factory.mktemp("table") / "points.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=GROUP)
    return path, frame


def write_config(case: Case, path, save_dir, learning_rate: float = 1e-6, steps: int = 1, name: str = "") -> dict:
    model, x = MODELS[case.model]
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": steps,
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(save_dir), "name": name or str(case), "default_hp_metric": False},
            },
            "callbacks": [{"class_path": "step_probe.Start"}],
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
        "model": {"learning_rate": learning_rate, "reduction": case.reduction, "model": model},
        "data": {
            "class_path": "gd_torch.data.TablePoints",
            "init_args": {
                "path": str(path),
                "x": x,
                "y": "y",
                "batch_size": case.batch,
                "chunk_rows": 500 if case.streamed else None,
            },
        },  # fmt: skip
        "curvature": {"enabled": True, "max_points": MEASURED if case.streamed else 0},
    }
    file = save_dir / f"{name or case}.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def step_hessian_top(model: torch.nn.Module, frame: pd.DataFrame, case: Case, processes: int) -> float:
    """The largest eigenvalue of the float64 Hessian of one step's loss, measured on the points the run
    measures on: the squared errors over them, divided by their count (mean) or by measured / step
    points (sum: a sum over m points stands for one over the step's B points as B/m of it)."""
    columns = MODELS[case.model][1]
    x = torch.tensor(frame[columns].to_numpy(np.float64))
    y = torch.tensor(frame["y"].to_numpy(np.float64))
    if case.model == "Line":
        x = x[:, 0]
    if case.streamed:  # the seeded subset: a permutation from seed 0, its first MEASURED positions, in order
        chosen = torch.randperm(N, generator=torch.Generator().manual_seed(0))[:MEASURED].sort().values
        x, y = x[chosen], y[chosen]
    step = N if case.batch is None else min(N, case.batch * processes)
    divisor = len(y) if case.reduction == "mean" else len(y) / step
    model = model.double()
    learnable = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    names, shapes = list(learnable), [p.shape for p in learnable.values()]
    flat = torch.cat([p.reshape(-1) for p in learnable.values()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        params, at = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            params[name] = vector[at : at + shape.numel()].reshape(shape)
            at += shape.numel()
        prediction = functional_call(model, params, (x,)).reshape(y.shape)
        return ((prediction - y) ** 2).sum() / divisor

    return torch.linalg.eigvalsh(jacrev(jacrev(loss))(flat))[-1].item()  # reverse over reverse: no jvp set-up


def check(run_dir, frame, case: Case, processes: int) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    curvature = summary["curvature"]
    start = torch.load(run_dir / "start.pt", weights_only=False)  # this test's own file: the model object
    expected = step_hessian_top(start, frame, case, processes)
    # Lanczos (the MLP) to its tolerance 1e-4; the whole Hessian (the linear models) to rounding.
    assert curvature["max_eigenvalue"] == pytest.approx(expected, rel=1e-4 if case.model == "MLP" else 1e-9), case
    step = N if case.batch is None else BATCH * processes
    assert curvature["points_per_step"] == step and curvature["reduction"] == case.reduction
    assert curvature["points_measured"] == (MEASURED if case.streamed else N)
    assert curvature["stable_learning_rate"] == pytest.approx(2 / curvature["max_eigenvalue"], rel=1e-12)
    if case.batch or case.streamed:  # the descent's path is not that of this Hessian: no prediction from it
        assert "predicted_steps" not in curvature


@pytest.mark.parametrize("case", [as_param(case) for case in CASES])
def test_one_process_reports_the_curvature_of_one_steps_loss(train, table, tmp_path, case):
    path, frame = table
    run = train(config=write_config(case, path, tmp_path), save_dir=tmp_path)
    assert run.exit_code == 0, run.stderr
    check(run.run_dir, frame, case, processes=1)
    if case.batch or case.streamed:  # the console says which loss the number is of
        step = "all 3,000 training points" if case.batch is None else f"a batch of {BATCH} points"
        measured = f"{MEASURED:,} of the 3,000" if case.streamed else "all 3,000"
        assert f"of one step's loss, the {case.reduction} over {step}, estimated on {measured}" in run.stdout


@pytest.mark.slow
def test_two_processes_report_the_curvature_of_one_steps_loss(table, tmp_path):
    """Every case on 2 CPU processes, in one torchrun group (each run of the command in turn): a step
    sums 2 x the batch; a PointData's points are shared out and the products summed."""
    path, frame = table
    runs = [
        ["--config", str(write_config(case, path, tmp_path)), "--trainer.strategy=ddp", "--trainer.devices=2",
         "--trainer.accelerator=cpu"]
        for case in CASES
    ]  # fmt: skip
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
            str(REPO / "tests" / "step_probe.py"), str(tmp_path / "runs.json")]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for case in CASES:
        (run_dir,) = tmp_path.glob(f"{case}/version_*")
        check(run_dir, frame, case, processes=2)


def numpy_top(case: Case, frame: pd.DataFrame) -> float:
    """The same Hessian's largest eigenvalue in closed form: 2 [x 1]^T [x 1] over the step's points."""
    model = Line() if case.model == "Line" else LinearRegression(3)
    return step_hessian_top(model, frame, case, processes=1)


LINEAR = [c for c in CASES if c.model != "MLP" and not c.streamed]


@pytest.mark.parametrize("case", [as_param(c, quick={"Line-sum-mini-all"}) for c in LINEAR])
def test_the_bound_predicts_convergence_and_divergence(train, table, tmp_path, case):
    """At 0.9x the bound, descent reaches the least-squares optimum (mini-batches: its neighbourhood); at
    1.1x it diverges (the error along the top eigenvector grows by |1 - lr lambda| > 1 each step). For
    mini-batches, each batch's Hessian is near the one the bound stands for."""
    path, frame = table
    bound = 2 / numpy_top(case, frame)
    for factor, diverges in ((0.9, False), (1.1, True)):
        run = train(config=write_config(case, path, tmp_path, factor * bound, steps=300, name=f"{case}-{factor}"))
        assert run.summary["curvature"]["stable_learning_rate"] == pytest.approx(bound, rel=1e-9)
        if diverges:
            assert run.exit_code == 1 and run.summary["stop_reason"] == "diverged", (factor, run.stdout)
        else:
            assert run.exit_code == 0 and run.summary["stop_reason"] == "max_steps", (factor, run.stderr)
            final, optimum = run.summary["final_loss"], least_squares(case, frame)
            if case.batch is None:  # full batch: to the least-squares optimum
                assert final == pytest.approx(optimum, rel=1e-6)
            else:  # mini-batches: near it, within their noise (1.5x at 0.9x the bound)
                assert optimum < final < 2 * optimum


def least_squares(case: Case, frame: pd.DataFrame) -> float:
    """The loss at the optimum over the whole training split, in float64."""
    x = frame[MODELS[case.model][1]].to_numpy(np.float64)
    design, y = np.column_stack([x, np.ones(N)]), frame["y"].to_numpy(np.float64)
    error = design @ np.linalg.lstsq(design, y, rcond=None)[0] - y
    return float((error**2).sum() / (N if case.reduction == "mean" else 1))
