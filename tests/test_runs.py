"""Runs as processes: simultaneous runs get their own directories, Ctrl-C ends a run cleanly and
`--ckpt_path` resumes it bit for bit, and the same config always gives the same numbers."""

import json
import signal
import subprocess

import pytest

from conftest import ARTICLE, LONG_ARTICLE, REPO, command, run_dirs

pytestmark = pytest.mark.xdist_group("long_article")  # one worker: the runs these tests share are made once

TAGS = ("train/loss", "params/intercept", "params/slope")


@pytest.mark.slow
def test_simultaneous_runs_each_get_a_complete_directory(tmp_path):
    argv = command("--config", str(ARTICLE), save_dir=tmp_path)
    processes = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    for process in processes:
        process.communicate(timeout=180)
        assert process.returncode == 0
    dirs = run_dirs(tmp_path)
    assert [d.name for d in dirs] == ["version_0", "version_1", "version_2", "version_3"]
    for run_dir in dirs:
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
        assert json.loads((run_dir / "summary.json").read_text())["steps"] == 30
        assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_ctrl_c_then_resume_continues_exactly(tmp_path, train, long_article):
    steps = LONG_ARTICLE
    argv = command("--config", str(ARTICLE), f"--trainer.max_steps={steps}", save_dir=tmp_path / "cut")
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    for line in process.stdout:
        if line.startswith("Step 100 |"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    (cut_dir,) = run_dirs(tmp_path / "cut")
    summary = json.loads((cut_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "interrupted"
    cut = summary["steps"]
    assert 100 < cut < steps
    last = cut_dir / "checkpoints" / "last.ckpt"
    assert f"--ckpt_path {last}" in out

    resumed = train(f"--trainer.max_steps={steps}", "--ckpt_path", str(last), "--trainer.callbacks=[]")
    whole = long_article
    assert resumed.exit_code == whole.exit_code == 0
    for tag in TAGS:
        assert resumed.scalars(tag) == whole.scalars(tag)[cut:]  # same steps, same float32 values
    assert resumed.summary["params"] == whole.summary["params"]
    assert resumed.summary["final_loss"] == whole.summary["final_loss"]
    assert resumed.summary["steps"] == steps


def test_the_same_config_gives_bit_identical_runs(train):
    both_learned = ("--trainer.max_steps=200", "--model.learning_rate=0.02")
    both_learned += ("--model.model.init_args.learn_slope=true",)
    first, second = train(*both_learned), train(*both_learned)
    assert first.exit_code == second.exit_code == 0
    for tag in TAGS:
        assert first.scalars(tag) == second.scalars(tag)
    assert first.summary["params"] == second.summary["params"]
    assert first.table == second.table
