"""The curvature: section. The bound of a dropout model is its eval-mode one, the same every run; the
trajectory is the same with the curvature and without it, bit for bit; a large model's Hessian is
bounded (a subset of points, Lanczos with a bounded basis) or skipped with a line; a learning rate
above the bound is a warning, or with enforce an error line and exit code 2."""

import pytest
import torch

from gd_torch.curvature import lanczos_top

from conftest import REPO

MLP = REPO / "configs" / "mlp.yaml"
SINE = f"--data.init_args.path={REPO / 'data' / 'noisy_sine.csv'}"
SGD = ("--model.optimizer=null", "--model.learning_rate=0.05", "--trainer.callbacks=[]",
       "--tensorboard.sharpness_every=0")  # fmt: skip


@pytest.mark.slow  # five runs
def test_a_dropout_models_bound_is_the_eval_mode_one_and_the_trajectory_is_untouched(train):
    """Dropout layers hold no parameters: the same seed gives the same weights with p = 0.5 and p = 0, so
    the eval-mode curvature of the first is the curvature of the second. With the curvature computed or
    not, the dropout masks drawn while training are the same: the losses match bit for bit."""
    dropout = (SINE, *SGD, "--trainer.max_steps=20", "--model.model.init_args.dropout=0.5")
    runs = [train(*dropout, config=MLP) for _ in range(3)]
    assert all(run.exit_code == 0 for run in runs), runs[0].stderr
    bounds = {run.summary["curvature"]["max_eigenvalue"] for run in runs}
    assert len(bounds) == 1  # the same every run: no dropout mask in it
    without_dropout = train(SINE, *SGD, "--trainer.max_steps=1", config=MLP)
    assert bounds == {without_dropout.summary["curvature"]["max_eigenvalue"]}
    skipped = train(*dropout, "--curvature.enabled=false", config=MLP)
    assert skipped.exit_code == 0 and "curvature" not in skipped.summary
    assert skipped.scalars("train/loss") == runs[0].scalars("train/loss")  # the same masks, the same float32 values
    assert skipped.summary["param_norms"] == runs[0].summary["param_norms"]


def test_a_subset_of_points_and_a_line_before_the_wait(train):
    """Above 64 learnable values the products go over max_points points of the training split; the
    console says how many before it starts when the work is large."""
    run = train(SINE, *SGD, "--trainer.max_steps=1", "--curvature.max_points=50",
                "--model.model.init_args.hidden=[256, 256]", config=MLP)  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert "Curvature: the loss Hessian's largest eigenvalue over 50 of the 160 training points" in run.stdout
    assert "(66,561 learnable values, at most 100 Lanczos steps)" in run.stdout  # 2 x 256 + 256 x 257 + 257
    assert run.summary["curvature"]["max_eigenvalue"] > 0


@pytest.mark.slow  # a model of 4.2M parameters, twice
def test_auto_skips_what_would_hold_the_first_step_back_and_true_computes_it(train):
    big = (SINE, *SGD, "--trainer.max_steps=1", "--model.model.init_args.hidden=[2048, 2048]")
    skipped = train(*big, config=MLP)  # 4.2M values x 160 points x 100 steps
    assert skipped.exit_code == 0, skipped.stderr
    assert "Curvature skipped: 4,202,497 learnable values over 160 points would hold the first step back" in (
        skipped.stdout
    )
    assert "curvature" not in skipped.summary
    computed = train(*big, "--curvature.enabled=true", "--curvature.max_points=10", "--curvature.max_iterations=3",
                     config=MLP)  # fmt: skip
    assert computed.exit_code == 0, computed.stderr
    assert computed.summary["curvature"]["max_eigenvalue"] > 0


def test_a_learning_rate_above_the_bound_warns_before_step_0_or_with_enforce_is_an_error(train):
    warned = train("--model.learning_rate=0.3", "--trainer.max_steps=3")
    assert warned.exit_code == 0
    (line,) = [line for line in warned.stderr.splitlines() if line.startswith("warning:")]
    assert line == "warning: learning_rate 0.3 is 1.5x the stable bound 0.2 for SGD: expect divergence"
    refused = train("--model.learning_rate=0.3", "--curvature.enforce=true")
    assert_error_at_set_up(refused, "error: model.learning_rate: learning_rate 0.3 is 1.5x the stable bound 0.2")
    below = train("--model.learning_rate=0.19", "--curvature.enforce=true", "--trainer.max_steps=3")
    assert below.exit_code == 0 and "warning:" not in below.stderr


def test_auto_needs_the_curvature(train):
    run = train("--model.learning_rate=auto", "--curvature.enabled=false")
    assert_error_at_set_up(run, "error: curvature.enabled: false, but model.learning_rate: auto needs the curvature")


def assert_error_at_set_up(run, beginning: str) -> None:
    """Found as the run set up, after the config was read (Lightning's notices came before it): the
    last line, no traceback, exit code 2, no run directory and no step."""
    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines()[-1].startswith(beginning), run.stderr
    assert "Traceback" not in run.stderr and "Step" not in run.stdout
    assert run.made == []  # taken back: nothing was trained


@pytest.mark.parametrize("size", [40, 400])
def test_lanczos_with_a_bounded_basis_finds_the_top_eigenvalue(size, monkeypatch):
    """A basis of 3 vectors at the most (as for a model of millions of values): the top eigenvalue of a
    matrix with a known spectrum still converges; the eigenvector needs the whole basis, so none."""
    import gd_torch.curvature as curvature

    generator = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    eigenvalues = torch.linspace(0.1, 1.0, size, dtype=torch.float64)
    eigenvalues[-1] = 3.0  # well separated
    matrix = q @ torch.diag(eigenvalues) @ q.T
    start = torch.randn(size, generator=generator, dtype=torch.float64)
    top, vector = lanczos_top(lambda v: matrix @ v, start, tolerance=1e-10, max_iterations=300)
    assert top == pytest.approx(3.0, rel=1e-9) and vector is not None
    monkeypatch.setattr(curvature, "BASIS_VALUES", 3 * size)
    top, vector = lanczos_top(lambda v: matrix @ v, start, tolerance=1e-10, max_iterations=300)
    assert top == pytest.approx(3.0, rel=1e-9)
    assert vector is None or torch.allclose((matrix @ vector), 3.0 * vector, atol=1e-6)
