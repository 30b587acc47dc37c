"""Every example of the README and the docs pages runs, and shows what the page says it shows.

Sybil collects each page's ``console`` blocks (``$ command`` lines, each followed by the output the page
shows, ``...`` standing for what varies) and ``python`` blocks (run in order, in one
namespace per page). Both run in a fresh working directory that holds the repository's configs, data,
scripts and examples, so the runs they make land there. An example that needs a GPU, a cluster, a
browser or a package install is marked on the page (``<!-- skip: next "why" -->``) and skipped by
name. Every fenced block carries a language, and every ``console`` and ``python`` block is collected:
a new example cannot go unrun.
"""

import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

import pytest
import yaml
from sybil import Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import CodeBlockParser, SkipParser

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUN = ("console", "python")  # the blocks that are run
SHOWN = ("yaml", "text", "csv")  # the blocks that are shown: configs (parsed here), outputs, files
LINKED = ("configs", "data", "scripts", "examples")  # what the examples read, by relative path
TIMEOUT = 600


def run_console(example) -> None:
    """Each ``$ command`` of the block in the page's working directory; its output, when the block shows
    one, matched (``...`` stands for anything), else its exit code 0."""
    for command, want in commands(example.parsed):
        # stdout and stderr as a terminal shows them (unbuffered, in order), less Lightning's set-up lines
        done = subprocess.run(command, shell=True, cwd=os.getcwd(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=TIMEOUT, env=environment())  # fmt: skip
        shown = PROGRESS_BAR.sub("", done.stdout).replace("\r", "")  # a terminal redraws the bar in place
        got = "".join(line for line in shown.splitlines(True) if not line.startswith(SET_UP_LINES))
        if not want.strip():
            assert done.returncode == 0, f"$ {command}\nexit code {done.returncode}\n{got[-3000:]}"
        elif not shows(want, got):
            raise AssertionError(f"$ {command}\nshown:\n{want}\nprinted:\n{got[-5000:]}")


# A number with a fraction or an exponent (a float a run computes); integers (steps, counts, versions)
# are text, compared exactly.
FLOAT = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")
PRINTED = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan))"
# float32 sums in another order (other threads, another BLAS kernel) move a result by about 1e-6 of
# itself after many steps: a page's float is its value to this, and to the last digit it prints.
RELATIVE = 1e-5


def shows(want: str, got: str) -> bool:
    """Whether the printed output is what the page shows: the same words, whitespace aside (a page may
    wrap a long line), where ``...`` stands for anything, nothing included (doctest's ELLIPSIS, less its
    need for something between two lines around a ``...`` line), and each float the page shows is the
    printed one to :data:`RELATIVE` of itself and one unit of its last printed digit."""
    want, got = " ".join(want.split()), " ".join(got.split())
    floats: list[str] = []
    pattern = ""
    for i, piece in enumerate(piece.strip() for piece in want.split("...")):
        pattern += ".*?" if i else ""
        at = 0
        for number in FLOAT.finditer(piece):
            pattern += re.escape(piece[at : number.start()]) + PRINTED
            floats.append(number.group())
            at = number.end()
        pattern += re.escape(piece[at:])
    matched = re.fullmatch(pattern, got, flags=re.DOTALL)
    return matched is not None and all(
        close(shown, printed) for shown, printed in zip(floats, matched.groups(), strict=True)
    )


def close(shown: str, printed: str) -> bool:
    """Whether two printings of a float32 result agree to what the computation guarantees."""
    a, b = float(shown), float(printed)
    return abs(a - b) <= RELATIVE * abs(a) + max(last_unit(shown), last_unit(printed))


def last_unit(number: str) -> float:
    """One unit of a printed number's last digit: 0.001 for 264.435, 1e-07 for 1.5e-06."""
    mantissa, _, exponent = number.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def commands(block: str) -> list[tuple[str, str]]:
    """(command, the output shown after it) for each ``$ `` line; a trailing backslash continues one."""
    found: list[tuple[str, str]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            raise ValueError(f"a console block's lines start with '$ ' or follow a command's: {line!r}")
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        output = []
        while i + 1 < len(lines) and not lines[i + 1].startswith("$ "):
            i += 1
            output.append(lines[i])
        found.append((command, "\n".join(output) + ("\n" if output else "")))
        i += 1
    return found


def environment() -> dict[str, str]:
    """This Python first on PATH (``python``, ``gd-train``, ``tensorboard`` are this environment's), and
    its output unbuffered (stdout and stderr then interleave as on a terminal)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}


# A tqdm frame: "Steps:  6%|▌    | 300/5000 [00:00<00:05, 921.22it/s, loss=226.6]" (and Lightning's own bars).
PROGRESS_BAR = re.compile(
    r"(?:Training|Epoch \d+|Steps|Validation|Sanity Checking)[^|\r\n]*\|[^|\r\n]*\|[^\[\r\n]*\[[^\]\r\n]*\]"
)
SET_UP_LINES = ("Seed set to", "GPU available:", "[rank: ")  # Lightning's, on stderr, said once in Get started


PYTHON = PythonEvaluator()


def run_python(example) -> None:
    """A ``python`` block, run in the page's namespace; one that starts ``# name.py`` is also that file
    (a module of the user's that the page's commands then import), written to the working directory."""
    named = re.match(r"# (\w+\.py)\b", example.parsed)
    if named:
        Path(named[1]).write_text(example.parsed)
    PYTHON(example)


SYBIL = Sybil(parsers=[CodeBlockParser("python", evaluator=run_python),
                       CodeBlockParser("console", evaluator=run_console), SkipParser()])  # fmt: skip


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    for name in LINKED:
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", environment()["PATH"])
    monkeypatch.setattr(sys, "argv", ["example"])  # LightningCLI warns about a test runner's arguments
    return tmp_path


@pytest.mark.slow  # each page's commands are real runs
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_example_of_the_page_runs_as_shown(page, workspace):
    skipped = []
    for example in SYBIL.parse(page).examples():
        try:
            example.evaluate()
        except unittest.SkipTest as reason:  # marked on the page, with its reason
            skipped.append(f"line {example.line}: {reason}")
    print(f"{page.name}: skipped by name: {skipped}")


FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


def fences(page: Path) -> list[tuple[int, str, str]]:
    """(line, language, text) of each fenced block of a page."""
    found, open_at, language, body = [], None, "", []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if open_at is None and match:
            open_at, language, body = number, match[2], []
        elif open_at is not None and line.strip() == "```":
            found.append((open_at, language, "\n".join(body)))
            open_at = None
        elif open_at is not None:
            body.append(line)
    return found


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_block_is_run_or_shown_and_every_config_parses(page):
    blocks = fences(page)
    for line, language, text in blocks:
        assert language in RUN + SHOWN, f"{page.name}:{line}: a fenced block says what it is: one of {RUN + SHOWN}"
        if language == "yaml":
            yaml.safe_load(text)  # a config shown must at least be YAML
    collected = sum(1 for _ in SYBIL.parse(page).examples())
    skipped = len(re.findall(r"<!-- skip: next", page.read_text()))  # a skip is an example of its own
    assert collected - skipped == sum(language in RUN for _, language, _ in blocks), page.name


@pytest.mark.parametrize(
    ("shown", "printed", "same"),
    [
        ("final loss: 0.0167823 (at the final parameters)", "final loss: 0.0167824 (at the final parameters)", True),
        ("test 264.435 mae 13.3843", "test 264.436 mae 13.3844", True),  # float32 sums in another order
        ("final loss: 0.0167823", "final loss: 0.0161065", False),  # another result, not another rounding
        ("Done: 86 steps (converged)", "Done: 87 steps (converged)", False),  # integers are exact
        ("Step 0 | b = 9.1000 ... Done: 30 steps", "Step 0 | b = 9.1000 | loss = 405.00 Done: 30 steps", True),
        ("b = 9.1000 ...", "b = 9.1100 and more", False),
        ("weight = [1.54195, -1.99981] ...", "weight = [1.54195, 1.99981] (learned)", False),  # the sign is the value's
        ("eigenvalue 1.5e-06", "eigenvalue 1.6e-06", True),
        ("runs/article/version_0", "runs/article/version_1", False),
    ],
)
def test_a_page_shows_a_float_to_the_digits_the_computation_guarantees(shown, printed, same):
    assert shows(shown, printed) is same
