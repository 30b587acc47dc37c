"""Off the main road, every failure one clean path: degenerate data trains and says what cannot be
computed; --ckpt_path last resumes only what it should; a resume trains at the rate asked for; a closed
pipe does not end the run; no logger still gets a run directory; a signal is said as what it interrupted,
and never leaves half a claim."""

import json
import signal
import subprocess
from types import SimpleNamespace

import pytest
import torch

import gd_torch
from gd_torch import rundir, signals
from gd_torch.command import main
from gd_torch.models import Line
from gd_torch.module import GradientDescent
from gd_torch.stopping import GracefulInterrupt

from conftest import ARTICLE, ARTICLE_ROWS, REPO, command, run_dirs


@pytest.mark.parametrize(
    "x, y, where", [([2.0], [5.0], "one point"), ([3.0, 3.0, 3.0], [1.0, 2.0, 4.0], "all 3 points at x = 3")]
)
def test_points_without_spread_train_and_say_there_is_no_optimum(train, x, y, where):
    """Slope and intercept learned on points without spread in x: before, a ZeroDivisionError traceback
    from the optimum's formula after the run directory was made."""
    run = train(f"--data.init_args.x={x}", f"--data.init_args.y={y}", "--model.model.init_args.learn_slope=true",
                "--model.learning_rate=0.01", "--trainer.max_steps=5")  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert f"note: no optimum/* lines: x has no spread ({where})" in run.stderr
    assert run.summary["steps"] == 5 and run.summary["stop_reason"] == "max_steps"
    assert not any(tag.startswith("optimum/") for tag in run.tags())
    assert "Condition number inf: the Hessian is singular" in run.stdout
    # Descent still fits what the points pin down: the prediction at their x moves to the mean of y.
    assert run.summary["final_loss"] < run.scalars("train/loss")[0][1]


def test_ckpt_path_last_resumes_the_latest_run_of_this_config_with_steps_left(train, tmp_path):
    """A newer run of another config under the same name is passed over (before, it was taken, and the
    article's resume refused as "another model"); a run that already reached max_steps is not resumed
    into a run that trains nothing (before: "Resuming ... (step 30)", exit 0, no summary)."""
    first = train("--trainer.max_steps=20")
    other = train("--trainer.max_steps=20", "--model.model.init_args.learn_slope=true")  # newer, another model
    resumed = train("--ckpt_path=last", "--trainer.max_steps=30")
    assert first.exit_code == other.exit_code == resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout.startswith(f"Resuming {first.run_dir} from its last checkpoint (step 20)\n")
    assert resumed.made == []  # it went on in the first run's own directory
    summary = json.loads((first.run_dir / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["params"]["intercept"] == pytest.approx(1 + 9 * 0.9**30, rel=1e-5)
    again = train("--ckpt_path=last", "--trainer.max_steps=30")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.startswith(
        f"Nothing to resume: the latest run of this config, {first.run_dir}, reached step 30 and trainer.max_steps"
        " is 30; starting a new run"
    )
    assert again.summary["steps"] == 30 and again.run_dir not in (first.run_dir, other.run_dir)
    assert [" ".join(row.split()) for row in again.table] == ARTICLE_ROWS  # a whole new run: the article


def test_a_new_learning_rate_on_resume_is_the_one_trained_at(train, tmp_path):
    """20 article steps at 0.01, then resumed to 40 at 0.02: b_40 - 1 = (b_20 - 1)(1 - 0.02 * 10)^20, the
    rate the summary reports (before, the optimizer's saved state kept 0.01: b = 1.13303)."""
    first = train("--trainer.max_steps=20")
    checkpoint = first.run_dir / "checkpoints" / "last.ckpt"
    resumed = train(f"--ckpt_path={checkpoint}", "--model.learning_rate=0.02", "--trainer.max_steps=40")
    assert resumed.exit_code == 0, resumed.stderr
    assert "Resuming at learning_rate 0.02 from step 20 (the checkpoint trained at 0.01)" in resumed.stdout
    b_20 = first.summary["params"]["intercept"]
    assert resumed.summary["params"]["intercept"] == pytest.approx(1 + (b_20 - 1) * 0.8**20, rel=1e-6)
    assert resumed.summary["params"]["intercept"] == pytest.approx(1.01262, abs=1e-5)
    assert resumed.summary["learning_rate"] == 0.02
    assert [v for _, v in resumed.scalars("train/learning_rate")] == pytest.approx([0.02] * 20)  # float32 events


@pytest.mark.slow  # a real process
def test_a_closed_pipe_stops_the_printing_not_the_training(tmp_path):
    """``train.py ... | head -3``: the reader goes after three lines, and the run still ends as it would
    have, max_steps, exit 0, its summary written (before: failed after 2 steps, two BrokenPipeError
    tracebacks)."""
    argv = command("--config", str(ARTICLE), "--trainer.max_steps=3000", save_dir=tmp_path)
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    head = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()  # as head does: the rest of the table and the summary meet a closed pipe
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0, err
    assert head[2].startswith("Step  0 |") and "Traceback" not in err and "Error" not in err
    (run_dir,) = run_dirs(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3000 and summary["stop_reason"] == "max_steps"


def test_no_logger_still_gets_a_run_directory_of_its_own(tmp_path, capsys):
    """``trainer.logger: false``: the run's files go to <default_root_dir>/runs/unlogged/version_<n>, a new
    one per run (before, into the working directory itself, the second run over the first; from
    gd_torch.fit a TypeError traceback)."""
    flags = ["--config", str(ARTICLE), "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"]
    assert main(flags) == 0
    assert main(flags) == 0
    root = tmp_path / "runs" / "unlogged"
    for version in (0, 1):
        run_dir = root / f"version_{version}"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["steps"] == 30 and (run_dir / "config.yaml").is_file()
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing else in the root
    assert f"run directory: {root / 'version_1'}" in capsys.readouterr().out
    run = gd_torch.fit(ARTICLE, "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}")
    assert run.exit_code == 0 and run.run_dir == root / "version_2"
    assert run.summary["params"]["intercept"] == pytest.approx(1 + 9 * 0.9**30, rel=1e-5)
    assert len(run.history["train/loss"]) == 30  # fit's own record of the values, as with a logger


@pytest.fixture
def command_handlers():
    """The command's own signal handlers in this process (as scripts/train.py installs them), and the
    interpreter's back afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in signals.REASONS}
    signals.install()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_signal_after_training_is_not_said_to_be_before_it(command_handlers):
    """Training puts the handlers from before it back when it ends; the command's "before training"
    one comes back as its "after training" one (before: a Ctrl-C while the run's end was printed said
    "Interrupted before training started.")."""
    graceful = GracefulInterrupt()
    graceful.setup(None, None, "fit")
    graceful.on_train_start(None, None)
    graceful.teardown(None, None, "fit")
    with pytest.raises(signals.StoppedAfterTraining) as stopped:
        signal.raise_signal(signal.SIGINT)
    assert stopped.value.line == "Interrupted after training ended." and stopped.value.exit_code == 130


def test_a_signal_while_the_run_directory_is_claimed_leaves_nothing_behind(tmp_path, monkeypatch, command_handlers):
    """The signal comes the instant the version directory exists, before the command has recorded it:
    it waits until the claim is whole, then the claim is taken back (before: the directory stayed)."""
    reserve = rundir.reserve_run_directory

    def interrupted_reserve(logger):
        made = reserve(logger)
        signal.raise_signal(signal.SIGTERM)  # between the mkdir and its being recorded
        return made

    monkeypatch.setattr(rundir, "reserve_run_directory", interrupted_reserve)
    with pytest.raises(signals.StoppedBeforeTraining):
        main(["--config", str(ARTICLE), "--trainer.logger.init_args.save_dir", str(tmp_path)])
    assert run_dirs(tmp_path) == []


def test_several_processes_use_the_compiled_loss_too():
    """With compile: true, a DDP step's squared errors go through the compiled function (before, the
    DDP path wrote the loss out again, eagerly); the loss it returns is the one-process value."""
    module = GradientDescent(Line(slope=2.0, intercept=10.0, learn_slope=False), reduction="sum", compile=True)
    assert module._squared_error is not module._eager_squared_error  # a torch.compile wrapper
    calls = []

    def compiled(x, y):  # stands for the compiled function: records the call, computes eagerly
        calls.append(len(y))
        return module._eager_squared_error(x, y)

    module._squared_error = compiled
    module._world_size = 2  # two processes, each with the article's five points: the sum is over ten
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(reduce=lambda t, reduce_op: 2 * t))
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    out = module.training_step((x, 2 * x + 1), 0)
    assert calls == [5]
    assert out["global_loss"].item() == pytest.approx(2 * 405.0)  # 81 per point, ten points
    assert out["loss"].item() == pytest.approx(2 * 405.0)  # this process's share times the world size
