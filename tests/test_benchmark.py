"""The benchmark runs in one command and prints its table (tiny sizes here; the real figures are
measured by hand and kept in docs/performance.md). Nothing here judges a speed: the machine may be
busy. What is checked is that the table says what it measured: each ratio is its two timings'."""

import re
import subprocess
import sys

import pytest

from conftest import REPO


def number(cell: str) -> float:
    return float(cell.strip().replace(",", "").removesuffix("x"))


@pytest.mark.slow
def test_quick_benchmark_prints_a_table_with_every_row():
    done = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| case | N | steps | gd_torch ms/step | plain ms/step")
    cpu_rows = [row for row in rows if row.startswith("| cpu |")]
    assert [row.split("|")[2].strip() for row in cpu_rows] == ["5"]
    for row in cpu_rows:
        cells = row.split("|")[1:-1]
        ours, plain, ratio = number(cells[3]), number(cells[4]), number(cells[5])
        assert ours > 0 and plain > 0
        assert ratio == pytest.approx(ours / plain, rel=0.02, abs=0.01)  # printed ms are rounded
        target = re.search(r"<= ([\d.]+)x: (met|MISSED)", row)
        if target:
            assert (target[2] == "met") == (ratio <= float(target[1]))
    assert "article as a process" in rows[-1]
