"""A model that fails during training, as the real command reports it: exactly one traceback (the
model's own), its message on the last line, exit code 1, and the run's logs and summary kept up to
the failing step; no callback runs the failing model again."""

import json
import os
import subprocess

import pytest

from conftest import ARTICLE, REPO, command, read_events, run_dirs

pytestmark = pytest.mark.slow  # real processes or many runs

FRAGILE = '''
import torch
from torch import nn


class Fragile(nn.Module):
    """b moves down from 10; below 8 it raises, as a user's model might."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        if self.b.item() < 8:
            raise RuntimeError("b went below 8: the model cannot go on")
        return x * 0 + self.b
'''


def test_a_model_failing_mid_run_is_reported_once(tmp_path):
    (tmp_path / "usermodels.py").write_text(FRAGILE)
    argv = command("--config", str(ARTICLE), "--model.model=usermodels.Fragile", save_dir=tmp_path / "runs")
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1
    lines = done.stderr.splitlines()
    assert lines[-1] == "error: training failed: b went below 8: the model cannot go on"
    assert lines[-2] == "RuntimeError: b went below 8: the model cannot go on"
    (run_dir,) = run_dirs(tmp_path / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    # The gradient is 2 * sum(b - y) = 10 (b - 5): b = 9.5, 9.05, 8.645, 8.2805, 7.95245, and the
    # forward of step 5 raises.
    assert summary["stop_reason"] == "failed" and summary["steps"] == 5
    assert summary["final_loss"] is None and "metrics" not in summary
    assert "final loss: not measured (the run failed)" in done.stdout
    events = read_events(run_dir)
    assert [e.step for e in events.Scalars("train/loss")] == [0, 1, 2, 3, 4]
