"""Several processes through Lightning's DDP (gloo, on the CPU): each trains on its own shard of the
points, and the run follows the single-process trajectory, logged once, for both reductions; with a
validation split, val/loss and the metrics are those of one process too."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ARTICLE, REPO, command, run_command, run_dirs, scalars

pytestmark = pytest.mark.slow  # real processes or many runs

TAGS = ("train/loss", "params/slope", "params/intercept")


@pytest.mark.parametrize(
    "reduction, learning_rate, held_out",
    [("sum", "0.02", ()), ("mean", "0.1", ("--data.init_args.val_fraction=0.4", "--trainer.val_check_interval=4"))],
    ids=["sum", "mean, with a validation split"],
)
def test_two_processes_follow_one(tmp_path, train, reduction, learning_rate, held_out):
    # Both parameters learned, so the two shards (3 and 2 of the 5 points, or 2 and 1 of 3) pull differently.
    args = (
        *held_out,
        "--model.model.init_args.learn_slope=true",
        f"--model.reduction={reduction}",
        f"--model.learning_rate={learning_rate}",
        "--trainer.max_steps=40",
        "--trainer.callbacks=[gd_torch.progress.StepProgressBar]",
        "--trainer.enable_progress_bar=true",
    )
    ddp = run_command(
        "--config",
        str(ARTICLE),
        *args,
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.accelerator=cpu",
        save_dir=tmp_path / "ddp",
    )
    assert ddp.exit_code == 0, ddp.stderr
    assert "Training on cpu, 2 processes" in ddp.stdout
    one = train(*args)
    assert one.exit_code == 0
    # One progress bar, rank zero's, as with one process: each bar starts with a "Training:" frame.
    assert bars_started(ddp.stdout) == bars_started(one.stdout) >= 1
    for tag in TAGS + (("val/loss",) if held_out else ()):
        two_processes, one_process = ddp.scalars(tag), one.scalars(tag)
        steps = list(range(4, 41, 4)) if tag == "val/loss" else list(range(40))
        assert [step for step, _ in two_processes] == steps  # written once per step
        assert [v for _, v in two_processes] == pytest.approx([v for _, v in one_process], rel=1e-6, abs=1e-6)
    summary = json.loads((ddp.run_dir / "summary.json").read_text())
    assert summary["params"] == pytest.approx(one.summary["params"], rel=1e-6)
    assert summary["final_loss"] == pytest.approx(one.summary["final_loss"], rel=1e-5)
    assert summary["curvature"] == pytest.approx(one.summary["curvature"], rel=1e-9)  # over all points, once
    for split, metrics in one.summary["metrics"].items():
        assert summary["metrics"][split] == pytest.approx(metrics, rel=1e-5)


def bars_started(console: str) -> int:
    return sum(frame.startswith("Training:") for frame in console.replace("\r", "\n").splitlines())


def test_sigterm_to_one_process_stops_both_after_the_same_step(tmp_path):
    """The signal reaches rank zero alone; the request is shared over the process group, so the other
    process stops after the same step, and the run ends as terminated with one checkpoint."""
    argv = command(
        "--config", str(ARTICLE), "--trainer.max_steps=100000", "--trainer.strategy=ddp",
        "--trainer.devices=2", "--trainer.accelerator=cpu", save_dir=tmp_path,
    )  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    for line in process.stdout:
        if line.startswith("Step 200 |"):
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "terminated" and 200 < summary["steps"] < 100_000
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == summary["steps"]


def test_a_time_based_checkpoint_due_at_every_step_does_not_hang(tmp_path):
    """A save due every 30 ms, a few steps: each process's own clock would call it due at different
    steps; rank zero decides for both, so both take part in every save and the run ends. (Before, both
    processes waited forever at the first save only one of them thought due.)"""
    run = run_command(
        "--config", str(ARTICLE), "--trainer.max_steps=300", "--trainer.strategy=ddp", "--trainer.devices=2",
        "--trainer.accelerator=cpu", "--checkpoint.every_n_steps=0", "--checkpoint.every_minutes=0.0005",
        save_dir=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr[-2000:]
    assert run.summary["steps"] == 300 and run.summary["stop_reason"] == "max_steps"
    checkpoint = torch.load(run.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 300


def torchrun(save_dir, *args: str) -> list[str]:
    """The article on 2 CPU processes under torchrun, which restarts the group (twice at most) when a
    worker fails; every start resumes the latest run."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=2",
        "scripts/train.py", "--config", str(ARTICLE), "--trainer.strategy=ddp", "--trainer.devices=2",
        "--trainer.accelerator=cpu", "--ckpt_path=last", *args, "--trainer.logger.init_args.save_dir", str(save_dir),
    ]  # fmt: skip


def worker_of_rank(agent: int, rank: int) -> int:
    """The pid of torchrun's worker of ``rank`` (a child of the agent, with RANK in its environment)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if parent == agent and f"RANK={rank}".encode() in environment:
            return int(entry.name)
    raise AssertionError(f"no worker of rank {rank} under {agent}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker through /proc")
def test_torchrun_restarts_a_killed_worker_and_the_run_ends_as_if_uninterrupted(tmp_path):
    """kill -9 of rank 1 at step 300 or later: torchrun restarts both workers, which resume from the
    newest checkpoint (every 200 steps) in the same run directory; the final parameters are those of
    an uninterrupted torchrun run bit for bit, and TensorBoard holds each step once."""
    flags = ("--trainer.max_steps=800", "--checkpoint.every_n_steps=200")
    environment = os.environ | {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}  # see gd_torch/launch.py
    whole = subprocess.run(
        torchrun(tmp_path / "whole", *flags), cwd=REPO, capture_output=True, text=True, timeout=300, env=environment
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    process = subprocess.Popen(
        torchrun(tmp_path / "restarted", *flags), cwd=REPO, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    for line in process.stdout:
        row = re.match(r"Step +(\d+) \|", line)
        if row and int(row[1]) >= 300:
            os.kill(worker_of_rank(process.pid, 1), signal.SIGKILL)
            break
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "failed (exitcode: -9) local_rank: 1" in err  # torchrun's own line about the killed worker
    (run_dir,) = run_dirs(tmp_path / "restarted")
    (resumed,) = re.findall(rf"Resuming {re.escape(str(run_dir))} from its last checkpoint \(step (\d+)\)", out)
    assert int(resumed) >= 200 and int(resumed) % 200 == 0
    (whole_dir,) = run_dirs(tmp_path / "whole")
    for tag in TAGS:
        assert scalars(run_dir, tag) == scalars(whole_dir, tag)  # each step once, the same float32 values
    summary, whole_summary = (json.loads((d / "summary.json").read_text()) for d in (run_dir, whole_dir))
    assert summary["steps"] == 800 and summary["params"] == whole_summary["params"]
    restarted = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    uninterrupted = torch.load(whole_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    for name, value in uninterrupted["state_dict"].items():
        assert torch.equal(restarted["state_dict"][name], value), name  # bit for bit


def test_the_curvature_shared_out_over_two_processes_is_the_one_process_value(tmp_path, train):
    """An MLP (Lanczos on Hessian-vector products): each process computes the products over its own
    half of the points and they are summed, so the largest eigenvalue is the one-process value; so is
    the sharpness as it trains (before, rank zero measured it over every point while the other waited)."""
    mlp = REPO / "configs" / "mlp.yaml"
    args = (f"--data.init_args.path={REPO / 'data' / 'noisy_sine.csv'}", "--model.optimizer=null",
            "--trainer.max_steps=20", "--trainer.callbacks=[]", "--tensorboard.sharpness_every=10")  # fmt: skip
    ddp = run_command("--config", str(mlp), *args, "--trainer.strategy=ddp", "--trainer.devices=2",
                      "--trainer.accelerator=cpu", save_dir=tmp_path / "ddp")  # fmt: skip
    assert ddp.exit_code == 0, ddp.stderr[-3000:]
    one = train(*args, config=mlp)
    assert one.exit_code == 0, one.stderr
    assert ddp.summary["curvature"]["max_eigenvalue"] == pytest.approx(
        one.summary["curvature"]["max_eigenvalue"], rel=1e-9
    )
    sharpness, alone = ddp.scalars("train/sharpness"), one.scalars("train/sharpness")
    assert len(sharpness) == 2 and [step for step, _ in sharpness] == [step for step, _ in alone]
    assert [v for _, v in sharpness] == pytest.approx([v for _, v in alone], rel=1e-4)


ONE_PROCESS_FAILS = '''
import os

import torch
from torch import nn


def on_rank_one() -> bool:
    return os.environ.get("LOCAL_RANK") == "1"


class FailsOnOneProcess(nn.Module):
    """The article's line; on the second process alone, its forward raises at the sixth training step."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor(10.0))
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 6 and on_rank_one():
                raise RuntimeError("rank 1 cannot go on")
        return 2 * x + self.b


class NoCurvatureOnOneProcess(nn.Module):
    """The article's line; on the second process alone, the curvature's second forward (in float64)
    raises: the first of its sums went through on both processes, the next one fails on one."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor(10.0))
        self.curvature_calls = 0

    def forward(self, x):
        if x.dtype == torch.float64:
            self.curvature_calls += 1
            if self.curvature_calls == 2 and on_rank_one():
                raise RuntimeError("no curvature on rank 1")
        return 2 * x + self.b
'''


@pytest.mark.parametrize("model", ["FailsOnOneProcess", "NoCurvatureOnOneProcess"])
def test_a_failure_on_one_process_does_not_leave_the_other_waiting(tmp_path, model):
    """What only one process meets must not leave the other in a collective it never joins (before, both
    runs hung until killed): a model failing on rank 1 mid-run ends the run as failed, its summary
    written by rank 0 (the run directory was found at the set-up, not in the exception's path); a
    curvature rank 1 cannot compute part-way is skipped on both (they agree before every sum), and the
    run trains."""
    (tmp_path / "usermodels.py").write_text(ONE_PROCESS_FAILS)
    argv = command("--config", str(ARTICLE), f"--model.model=usermodels.{model}", "--trainer.strategy=ddp",
                   "--trainer.devices=2", "--trainer.accelerator=cpu", save_dir=tmp_path / "runs")  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, env=environment)
    (run_dir,) = run_dirs(tmp_path / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    if model == "FailsOnOneProcess":
        assert done.returncode == 1 and "RuntimeError: rank 1 cannot go on" in done.stderr
        assert summary["stop_reason"] == "failed" and summary["steps"] == 5
    else:
        assert done.returncode == 0, done.stderr[-2000:]
        assert summary["stop_reason"] == "max_steps" and "curvature" not in summary
        assert "Stable for" not in done.stdout
        said = "the loss Hessian cannot be computed: RuntimeError: no curvature on rank 1 (on process 1)"
        line = f"Curvature skipped: {said}\n"
        assert done.stdout.count("Curvature skipped") == 1 and line in done.stdout
        assert summary["params"]["b"] == pytest.approx(1 + 9 * 0.9**30, rel=1e-5)
