"""Off the main road, every failure one clean path: degenerate data trains and says what cannot be
computed."""

import pytest


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
