"""Shared helpers: run the command in this process or as a real one, and read what it wrote."""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gd_torch.cli import main

REPO = Path(__file__).resolve().parents[1]
ARTICLE = REPO / "configs" / "article.yaml"
ARTICLE_ROWS = (Path(__file__).parent / "article_table.txt").read_text().splitlines()
ROW = re.compile(r"Step +(\d+) \| b = (-?\d+\.\d{4}) \| loss = (\d+\.\d{2})")


def article_columns() -> tuple[list[float], list[float]]:
    """The article's b and loss columns, as it prints them."""
    rows = [ROW.fullmatch(row).groups() for row in ARTICLE_ROWS]
    return [float(b) for _, b, _ in rows], [float(loss) for _, _, loss in rows]


def run_dirs(save_dir: Path) -> list[Path]:
    return sorted(save_dir.glob("*/version_*"))


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    save_dir: Path
    made: list[Path]  # the run directories this run created

    @property
    def run_dirs(self) -> list[Path]:
        return run_dirs(self.save_dir)

    @property
    def run_dir(self) -> Path:
        (only,) = self.made
        return only

    @property
    def summary(self) -> dict:
        return json.loads((self.run_dir / "summary.json").read_text())

    @property
    def table(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("Step ")]

    def scalars(self, tag: str) -> list[tuple[int, float]]:
        """(step, value) of every point of ``tag``, read with TensorBoard's own reader."""
        events = EventAccumulator(str(self.run_dir), size_guidance={"scalars": 0})
        events.Reload()
        return [(e.step, e.value) for e in events.Scalars(tag)]

    def tags(self) -> list[str]:
        events = EventAccumulator(str(self.run_dir), size_guidance={"scalars": 0})
        events.Reload()
        return sorted(events.Tags()["scalars"])


@pytest.fixture(autouse=True)
def no_pytest_argv(monkeypatch):
    """``main(argv)`` is called in-process; Lightning warns if sys.argv holds other arguments."""
    monkeypatch.setattr(sys, "argv", ["train.py"])


@pytest.fixture
def train(tmp_path, capsys):
    """Run ``main`` in this process with output under ``tmp_path``: ``train("--model.x", "1", ...)``."""

    def run(*args: str, config: Path | None = ARTICLE, save_dir: Path = tmp_path) -> Run:
        argv = (["--config", str(config)] if config else []) + list(args)
        argv += ["--trainer.logger.init_args.save_dir", str(save_dir)]
        earlier = run_dirs(tmp_path)
        code = main(argv)
        out, err = capsys.readouterr()
        return Run(code, out, err, tmp_path, [d for d in run_dirs(tmp_path) if d not in earlier])

    return run


def command(*args: str, save_dir: Path) -> list[str]:
    """``python scripts/train.py ARGS`` with its runs under ``save_dir``."""
    script = REPO / "scripts" / "train.py"
    return [sys.executable, str(script), *args, "--trainer.logger.init_args.save_dir", str(save_dir)]


def run_command(*args: str, save_dir: Path, timeout: float = 120) -> Run:
    """Run ``python scripts/train.py`` as a real process, as a user would."""
    argv = command(*args, save_dir=save_dir)
    earlier = run_dirs(save_dir)
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    made = [d for d in run_dirs(save_dir) if d not in earlier]
    return Run(done.returncode, done.stdout, done.stderr, save_dir, made)


def assert_clean_error(run, *words: str) -> str:
    assert run.exit_code == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    errors = run.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), run.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert run.run_dirs == [], "a run directory was left behind"
    assert "Step" not in run.stdout
    return errors[0]
