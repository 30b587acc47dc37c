"""The benchmark runs in one command and prints its table (tiny sizes here; the real figures are
measured by hand and kept in docs/performance.md)."""

import re
import subprocess
import sys

from conftest import REPO


def test_quick_benchmark_prints_a_table_with_every_row():
    done = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--quick"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| case | N | steps | gd_torch ms/step | plain ms/step")
    cpu_rows = [row for row in rows if row.startswith("| cpu |")]
    assert [row.split("|")[2].strip() for row in cpu_rows] == ["5", "10,000"]
    for row in cpu_rows:
        ratio = float(re.search(r"\| ([\d.]+)x \|", row)[1])
        assert 0.2 < ratio < 50  # a real measurement, whatever the machine's load
    assert "article as a process" in rows[-1]
