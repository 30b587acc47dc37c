"""Runs that survive: a kill -9 after a periodic checkpoint and SIGTERM both resume bit for bit from
checkpoints/last.ckpt, and Ctrl-C while the command still loads exits 130 with one line. Each runs
the real command in a session of its own, so signals reach it as a terminal's would."""

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from gd_torch import signals
from gd_torch.command import main

from conftest import ARTICLE, LONG_ARTICLE, REPO, command, run_dirs, scalars

STEPS = LONG_ARTICLE
TAGS = ("train/loss", "params/intercept")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("long_article")]


def start(*args: str, save_dir) -> subprocess.Popen:
    argv = command("--config", str(ARTICLE), f"--trainer.max_steps={STEPS}", *args, save_dir=save_dir)
    return subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def signal_at_step(process: subprocess.Popen, step: int, signum: int) -> tuple[str, str]:
    for line in process.stdout:
        if line.startswith(f"Step {step} |"):
            process.send_signal(signum)
            break
    return process.communicate(timeout=120)


def resume_matches_a_whole_run(train, whole, checkpoint, cut: int) -> None:
    resumed = train(f"--trainer.max_steps={STEPS}", "--ckpt_path", str(checkpoint), "--trainer.callbacks=[]")
    assert resumed.exit_code == 0, resumed.stderr
    for tag in TAGS:
        assert resumed.scalars(tag) == whole.scalars(tag)[cut:]  # the same float32 values, step for step
    assert resumed.summary["params"] == whole.summary["params"]


def test_kill_9_after_a_periodic_checkpoint_then_resume(tmp_path, train, long_article):
    process = start("--checkpoint.every_n_steps=200", save_dir=tmp_path / "killed")
    out, _ = signal_at_step(process, 900, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    (run_dir,) = run_dirs(tmp_path / "killed")
    assert not (run_dir / "summary.json").exists()  # it never got to the end
    last = run_dir / "checkpoints" / "last.ckpt"
    cut = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert cut >= 800 and cut % 200 == 0  # the newest whole checkpoint
    # The logs were written out with each checkpoint: TensorBoard has every step up to it.
    assert [step for step, _ in scalars(run_dir, "train/loss")][:cut] == list(range(cut))
    resume_matches_a_whole_run(train, long_article, last, cut)


def test_sigterm_ends_the_run_like_ctrl_c_then_resume(tmp_path, train, long_article):
    process = start(save_dir=tmp_path / "terminated")
    out, err = signal_at_step(process, 300, signal.SIGTERM)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    (run_dir,) = run_dirs(tmp_path / "terminated")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "terminated" and 300 < summary["steps"] < STEPS
    last = run_dir / "checkpoints" / "last.ckpt"
    assert (
        f"Terminated. Resume with: python scripts/train.py --config {run_dir / 'config.yaml'} --ckpt_path {last}" in out
    )
    resume_matches_a_whole_run(train, long_article, last, summary["steps"])


def test_a_closed_terminal_ends_the_run_after_its_step_with_a_checkpoint(tmp_path, train, long_article):
    """The terminal the run prints to closes (an SSH connection drops): its writes fail with EIO, and
    SIGHUP comes. The run ends after the step in progress as on SIGTERM, printing nowhere, and
    resumes bit for bit (before, SIGHUP ended the process where it stood, nothing written)."""
    controller, terminal = pty.openpty()
    argv = command("--config", str(ARTICLE), f"--trainer.max_steps={STEPS}", save_dir=tmp_path / "hung_up")
    process = subprocess.Popen(argv, cwd=REPO, stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    seen = b""
    while b"Step 300 |" not in seen:
        seen += os.read(controller, 65536)
    os.close(controller)  # the terminal is gone: writes to it fail with EIO from now on
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=120) == 129
    (run_dir,) = run_dirs(tmp_path / "hung_up")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "hangup" and 300 < summary["steps"] < STEPS
    resume_matches_a_whole_run(train, long_article, run_dir / "checkpoints" / "last.ckpt", summary["steps"])


def test_ckpt_path_last_goes_on_in_the_killed_runs_own_directory(tmp_path, long_article):
    """The same command twice, as a restarted job runs it: killed with kill -9 at step 900 (its newest
    checkpoint is at 500, its event file already holds steps past that), then run again: it resumes in
    the same directory, and TensorBoard holds each step once, with the uninterrupted run's values."""
    flags = ("--checkpoint.every_n_steps=500", "--ckpt_path=last")
    process = start(*flags, save_dir=tmp_path)
    first_line = process.stdout.readline()
    signal_at_step(process, 900, signal.SIGKILL)
    (run_dir,) = run_dirs(tmp_path)
    assert first_line == f"No run of this config in {run_dir.parent} to resume: starting a new one\n"
    cut = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert cut == 500
    assert max(step for step, _ in scalars(run_dir, "train/loss")) >= cut  # steps that will come again

    again = start(*flags, save_dir=tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"Resuming {run_dir} from its last checkpoint (step {cut})" in out
    assert run_dirs(tmp_path) == [run_dir]
    for tag in TAGS:
        assert scalars(run_dir, tag) == long_article.scalars(tag)  # every step once, the same float32 values
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["params"] == long_article.summary["params"]


BEFORE_TRAINING = pytest.mark.parametrize(
    "signum, exit_code, line",
    [(signal.SIGINT, 130, "Interrupted before training started."),
     (signal.SIGTERM, 143, "Terminated before training started."),
     (signal.SIGHUP, 129, "Hung up before training started.")],
    ids=["ctrl-c", "sigterm", "sighup"],
)  # fmt: skip


@BEFORE_TRAINING
@pytest.mark.parametrize("entry", ["scripts/train.py", "gd-train"])
def test_a_signal_while_the_command_loads(tmp_path, signum, exit_code, line, entry):
    """Python's -X importtime reports each import on stderr as it completes: the signal comes once
    Lightning's own modules are being imported, the slow part of the start. The installed ``gd-train``
    (a script pip wrote beside this Python) installs its handlers as early as scripts/train.py."""
    argv = command("--config", str(ARTICLE), save_dir=tmp_path)
    if entry == "gd-train":
        argv[1] = str(Path(sys.executable).parent / "gd-train")
    process = subprocess.Popen(
        [argv[0], "-X", "importtime", *argv[1:]], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    for said in process.stderr:
        if "lightning.pytorch" in said:
            process.send_signal(signum)
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == exit_code
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    assert said == [line] and out == ""
    assert run_dirs(tmp_path) == []


@BEFORE_TRAINING
def test_a_signal_during_the_set_up_leaves_no_run_directory(tmp_path, signum, exit_code, line):
    """The curvature of a 1M-parameter MLP, asked for, takes seconds before the first step, after the
    run directory was claimed: the signal, sent as soon as the directory exists, ends the command at
    once, with one line, and the directory is taken back."""
    argv = command(
        "--config", str(REPO / "configs" / "synthetic.yaml"), "--model.model=gd_torch.models.MLP",
        "--model.model.init_args.hidden=[1024, 1024]", "--curvature.enabled=true", "--curvature.max_points=256",
        save_dir=tmp_path,
    )  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    while not run_dirs(tmp_path):  # waiting for the directory, not for a time
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == exit_code, err
    assert "Training on" not in out  # it came during the set-up, before the first step
    assert err.splitlines()[-1] == line and "Traceback" not in err
    assert run_dirs(tmp_path) == []


def test_minibatch_run_interrupted_mid_epoch_resumes_bit_for_bit(tmp_path, train):
    """synthetic.yaml: 100 batches per epoch; Ctrl-C at step 160 leaves a checkpoint halfway through
    the second epoch, and the resumed run draws the very batches the uninterrupted one does."""
    synthetic = REPO / "configs" / "synthetic.yaml"
    table = "--trainer.callbacks+=gd_torch.callbacks.ArticleTable"  # the steps, as they go (not the bar)
    argv = command("--config", str(synthetic), "--trainer.max_steps=400", "--trainer.callbacks=[]", table,
                   "--trainer.enable_progress_bar=false", save_dir=tmp_path / "cut")  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _, err = signal_at_step(process, 160, signal.SIGINT)  # a row the thinned table prints
    assert process.returncode == 130, err
    assert "not resumable" not in err
    (run_dir,) = run_dirs(tmp_path / "cut")
    cut = json.loads((run_dir / "summary.json").read_text())["steps"]
    assert 160 < cut < 400 and cut % 100  # mid-epoch
    flags = ("--trainer.max_steps=400", "--trainer.callbacks=[]")
    resumed = train(*flags, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"), config=synthetic)
    whole = train(*flags, config=synthetic)
    assert resumed.exit_code == whole.exit_code == 0, resumed.stderr
    assert "not resumable" not in resumed.stderr
    for tag in ("train/loss", "params/slope", "params/intercept"):
        assert resumed.scalars(tag) == whole.scalars(tag)[cut:]
    assert resumed.summary["params"] == whole.summary["params"]


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_a_second_ctrl_c_during_the_graceful_end(tmp_path, delay):
    """Ctrl-C twice: exit 130 without a traceback, and the checkpoint is a whole one (written
    atomically), or there is none."""
    process = start(save_dir=tmp_path)
    for line in process.stdout:
        if line.startswith("Step 1000 |"):
            process.send_signal(signal.SIGINT)
            time.sleep(delay)
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err
    (run_dir,) = run_dirs(tmp_path)
    for checkpoint in (run_dir / "checkpoints").glob("*"):
        assert checkpoint.name == "last.ckpt"  # no partial file left behind
        assert torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"] >= 1000
        # However far the graceful end got, the way back is said (before, not after a second Ctrl-C).
        assert (
            out.splitlines()[-1] == f"Interrupted. Resume with: python scripts/train.py --config"
            f" {run_dir / 'config.yaml'} --ckpt_path {checkpoint}"
        )


def test_the_resume_line_comes_with_a_checkpoint_callback_of_the_configs_own(tmp_path):
    """The README's recipe adds a ModelCheckpoint to trainer.callbacks, before the run's own last.ckpt
    saver; Ctrl-C still says how to resume from last.ckpt (before, the first ModelCheckpoint was taken
    for the run's, and no line came)."""
    process = start("--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint", save_dir=tmp_path)
    out, err = signal_at_step(process, 200, signal.SIGINT)
    assert process.returncode == 130, err
    (run_dir,) = run_dirs(tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert (
        out.splitlines()[-1] == f"Interrupted. Resume with: python scripts/train.py --config"
        f" {run_dir / 'config.yaml'} --ckpt_path {last}"
    )


def test_a_signal_as_the_event_writer_starts_leaves_no_thread_writing(tmp_path, monkeypatch):
    """TensorBoard's event writer starts its thread before its logger holds it. A signal in between
    left a thread nothing closed, which then wrote into the run directory being taken back (a flaky
    CI failure: FileNotFoundError as the last line). The writers are now made while signals wait, and
    each is closed before its directory goes."""
    from tensorboard.summary.writer import event_file_writer

    started = event_file_writer.EventFileWriter.__init__

    def started_then_signalled(self, *args, **kwargs) -> None:
        started(self, *args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # its thread is running, and nothing holds the writer yet

    monkeypatch.setattr(event_file_writer.EventFileWriter, "__init__", started_then_signalled)
    before = set(threading.enumerate())
    handlers = {signum: signal.getsignal(signum) for signum in signals.REASONS}
    signals.install()
    try:
        with pytest.raises(signals.StoppedBeforeTraining):
            main(["--config", str(ARTICLE), "--trainer.logger.init_args.save_dir", str(tmp_path)])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert run_dirs(tmp_path) == []
    writing = [t for t in set(threading.enumerate()) - before if isinstance(t, event_file_writer._AsyncWriterThread)]
    assert writing == []
