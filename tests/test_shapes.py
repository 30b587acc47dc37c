"""The shape contract, checked with one forward pass before a run directory exists: torch.nn.Linear's
(N, 1) output trains exactly like LinearRegression's (N,), and a model that does not fit its data is
exit 2 with one line naming the shapes, never a broadcast loss."""

import pytest
import torch

from conftest import REPO, assert_clean_error

CSV = REPO / "configs" / "csv.yaml"
DATA = f"--data.init_args.path={REPO / 'data' / 'three_features.csv'}"
LINEAR = ("--model.model=torch.nn.Linear", "--model.model.init_args.in_features=3")


def test_torch_linear_reaches_the_final_loss_of_linear_regression(train):
    ours = train(DATA, config=CSV)
    torchs = train(DATA, *LINEAR, "--model.model.init_args.out_features=1", config=CSV)
    assert ours.exit_code == torchs.exit_code == 0, torchs.stderr
    assert torchs.summary["stop_reason"] == "converged"
    assert torchs.summary["final_loss"] == pytest.approx(ours.summary["final_loss"], rel=1e-4)
    (weights,) = torchs.summary["params"]["weight"]  # shape (1, 3)
    assert weights == pytest.approx(ours.summary["params"]["weight"], abs=1e-3)
    assert torchs.summary["params"]["bias"] == pytest.approx(ours.summary["params"]["bias"], abs=1e-3)


def test_a_wrong_feature_count_is_one_line_and_no_run(train):
    run = train(DATA, "--model.model.init_args.features=2", config=CSV)
    line = assert_clean_error(run, "model.model:", "LinearRegression", "x of shape (4, 3)", "(N, 3)", "x1, x2, x3")
    assert "size mismatch" in line  # the model's own message


def test_a_two_wide_output_is_one_line_and_no_run(train):
    run = train(DATA, *LINEAR, "--model.model.init_args.out_features=2", config=CSV)
    assert_clean_error(run, "model.model:", "Linear", "output of shape (4, 2)", "expected (4,) or (4, 1)")


class Scalar(torch.nn.Module):
    """A user's model that sums its output away: a (N,) target would broadcast against ()."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight).sum()


def test_an_output_that_would_broadcast_is_refused(train):
    run = train(DATA, "--model.model=test_shapes.Scalar", config=CSV)
    assert_clean_error(run, "model.model:", "Scalar", "output of shape ()", "expected (4,)")


def test_the_check_leaves_the_run_as_it_was(train):
    """One forward pass in eval mode without gradients: the trajectory is the one the article prints."""
    run = train("--trainer.max_steps=3")
    assert run.table[0] == "Step  0 | b = 9.1000 | loss = 405.00"


def test_the_loss_refuses_shapes_that_would_broadcast():
    from gd_torch.models import as_targets

    y = torch.zeros(5)
    assert as_targets(torch.ones(5, 1), y).shape == (5,)
    for shape in [(5, 2), (1, 5), (5, 1, 1), ()]:
        with pytest.raises(ValueError, match="one prediction per point"):
            as_targets(torch.ones(shape), y)
