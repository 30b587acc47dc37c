"""Shared helpers: run the command in this process or as a real one, read what it wrote with
TensorBoard's own reader, start a local server and wait for it, and the reference runs that several
test files compare against (computed once per session)."""

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gd_torch.command import main

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


def read_events(run_dir: Path) -> EventAccumulator:
    """Everything the run's event files hold, with TensorBoard's own reader (nothing sampled away)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    return events


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every point of ``tag``."""
    return [(e.step, e.value) for e in read_events(run_dir).Scalars(tag)]


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
        return scalars(self.run_dir, tag)

    def tags(self) -> list[str]:
        return sorted(read_events(self.run_dir).Tags()["scalars"])


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def local_server(argv: list[str], ready: Callable[[], bool], what: str, timeout: float = 90) -> Iterator[None]:
    """Run a server (``argv``) until the block ends, once ``ready()`` says it answers; polled, never a
    fixed wait. It is stopped at the end, also when a test fails."""
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    break
            except OSError:
                pass
            assert server.poll() is None, f"{what} exited"
            assert time.monotonic() < deadline, f"{what} did not answer within {timeout:.0f} s"
            time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def get_json(url: str, body: dict | None = None) -> object:
    """GET ``url`` (or POST ``body`` as JSON) and decode the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def train_in_process(save_dir: Path, *args: str, config: Path = ARTICLE) -> Run:
    """``main`` in this process, for fixtures wider than one test (no capsys there)."""
    argv = ["--config", str(config), *args, "--trainer.logger.init_args.save_dir", str(save_dir)]
    earlier = run_dirs(save_dir)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Run(code, out.getvalue(), err.getvalue(), save_dir, [d for d in run_dirs(save_dir) if d not in earlier])


LONG_ARTICLE = 3000  # steps of the article that the signal tests cut and resume


@pytest.fixture(scope="session")
def long_article(tmp_path_factory) -> Run:
    """The article for LONG_ARTICLE steps, uninterrupted: what every cut-and-resumed run must equal."""
    save_dir = tmp_path_factory.mktemp("long_article")
    run = train_in_process(save_dir, f"--trainer.max_steps={LONG_ARTICLE}", "--trainer.callbacks=[]")
    assert run.exit_code == 0, run.stderr
    return run
