"""The ways a run ends: the step budget, convergence at the step the closed form predicts, and
divergence with exit code 1, the right stable learning rate, and the logs kept."""

import math

import pytest

from conftest import REPO

CONVERGE = REPO / "configs" / "converge.yaml"


def test_max_steps_is_the_article_stop(train):
    run = train()
    assert run.exit_code == 0
    assert run.summary["stop_reason"] == "max_steps" and run.summary["steps"] == 30


def test_converges_at_the_step_the_closed_form_predicts(train):
    run = train(config=CONVERGE)
    assert run.exit_code == 0, run.stderr
    # Update k moves b by |b_(k+1) - b_k| = 9 * 0.9**k * (1 - 0.9) = 0.9**(k + 1).
    first_small = next(k for k in range(10_000) if 0.9 ** (k + 1) < 1e-4)
    assert run.summary["stop_reason"] == "converged"
    assert run.summary["steps"] == first_small + 1 == 88
    b = [value for _, value in run.scalars("params/intercept")]
    assert len(b) == 88
    assert run.summary["params"]["intercept"] == pytest.approx(1 + 9 * 0.9**88, rel=1e-6)
    assert "88 steps (converged)" in run.stdout


def test_tolerance_zero_is_off(train):
    run = train("--trainer.callbacks.tolerance=0", "--trainer.max_steps=120", config=CONVERGE)
    assert run.summary["stop_reason"] == "max_steps" and run.summary["steps"] == 120


@pytest.mark.parametrize(
    "learning_rate, reduction, stable",
    [("0.3", "sum", "0.2"), ("1.5", "mean", "1")],  # 1/N for the sum, 1 for the mean
)
def test_divergence_exits_1_with_the_stable_bound(train, learning_rate, reduction, stable):
    run = train("--model.learning_rate", learning_rate, "--model.reduction", reduction)
    assert run.exit_code == 1
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    # b - 1 is multiplied by (1 - 2 * lr * N / s) = -2 each step, the loss by 4: over 1e4 x at step 7.
    assert "diverged at step 7" in error
    assert f"learning_rate < {stable};" in error and f"got {learning_rate}" in error
    assert f"reduction '{reduction}'" in error
    loss_0 = 405.0 / (5 if reduction == "mean" else 1)
    assert f"loss = {loss_0 * 4**7:.6g}" in error
    # The logs up to that step are kept for TensorBoard, and the summary says what happened.
    assert [step for step, _ in run.scalars("train/loss")] == list(range(8))
    assert run.summary["stop_reason"] == "diverged"
    assert run.summary["steps"] == 8


def test_a_non_finite_loss_is_divergence(train):
    run = train("--model.learning_rate", "1e30")
    assert run.exit_code == 1
    assert "loss = inf (not finite)" in run.stderr
    assert run.summary["stop_reason"] == "diverged"
    assert run.summary["final_loss"] is None  # JSON has no infinity


def test_two_learnable_parameters_get_the_hessian_bound(train):
    """For slope and intercept together the bound is 2 / largest eigenvalue of the 2x2 Hessian."""
    run = train("--model.model.init_args.learn_slope", "true", "--model.learning_rate", "0.05")
    assert run.exit_code == 1
    # Sum reduction, x = 0..4: H = 2 [[30, 10], [10, 5]], eigenvalues 35 +- 5 sqrt(41).
    bound = 2 / (35 + 5 * math.sqrt(41))
    assert f"learning_rate < {bound:.6g};" in run.stderr
