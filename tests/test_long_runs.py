"""A long run stays readable and bounded: 12,000 steps of the article's config print at most 300
console lines (the table thins out and says so, the last step always shown), take no more memory
than a 2,000-step run (within 60 MB), and draw a trajectory.png under 1 MB."""

import os
import re
import subprocess

import pytest

from conftest import ARTICLE, REPO, command, run_dirs

pytestmark = pytest.mark.slow  # real processes or many runs


def run_measured(steps: int, save_dir) -> tuple[int, str, int]:
    """(exit code, stdout, the process's own peak memory in KiB)."""
    out = save_dir.parent / f"{save_dir.name}.out"
    with out.open("w") as stdout:
        argv = command("--config", str(ARTICLE), f"--trainer.max_steps={steps}", save_dir=save_dir)
        process = subprocess.Popen(argv, cwd=REPO, stdout=stdout, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)  # this child's rusage alone
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, out.read_text(), usage.ru_maxrss


def test_twelve_thousand_steps_of_the_article(tmp_path):
    """Past 10,000 steps the table thins twice and the trajectory keeps 2,000 of 12,000 steps."""
    code, short_out, short_peak = run_measured(2_000, tmp_path / "short")
    assert code == 0
    code, out, peak = run_measured(12_000, tmp_path / "long")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) <= 300
    assert "(from step 100 on, every 20th step; the last one always)" in lines
    assert "(from step 10,000 on, every 2,000th step; the last one always)" in lines
    steps = [int(m[1]) for line in lines if (m := re.match(r"Step +(\d+) \|", line))]
    assert steps[:100] == list(range(100)) and steps[-1] == 11_999
    assert peak - short_peak < 60 * 1024, f"{peak} KiB after 12,000 steps, {short_peak} KiB after 2,000"
    (run_dir,) = run_dirs(tmp_path / "long")
    assert (run_dir / "trajectory.png").stat().st_size < 1_000_000
