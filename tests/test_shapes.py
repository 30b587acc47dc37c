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
    line = assert_clean_error(run)
    assert line == (
        "error: model.model.init_args.features is 2, but the data has 3 features (x1, x2, x3);"
        " leave it out to take the data's"
    )


def test_a_wrong_feature_count_of_a_model_not_sized_by_the_data_is_the_models_own_message(train):
    run = train(
        DATA, *LINEAR, "--model.model.init_args.in_features=2", "--model.model.init_args.out_features=1", config=CSV
    )
    line = assert_clean_error(run, "model.model:", "Linear", "x of shape (4, 3)", "(N, 3)", "x1, x2, x3")
    assert "mat1 and mat2 shapes cannot be multiplied" in line  # the model's own message


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


def test_the_check_leaves_the_run_as_it_was():
    """One forward pass in eval mode without gradients: no batch-norm statistics updated, no dropout
    mask drawn (the random stream is untouched), every module back in the mode it was in."""
    from gd_torch.checks import check_model_fits_data

    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5),
                                torch.nn.Linear(8, 1))  # fmt: skip
    model[2].eval()  # a submodule's own mode is kept too
    x, y = torch.randn(10, 2), torch.randn(10)
    statistics = model[1].running_mean.clone(), model[1].num_batches_tracked.clone()
    random_state = torch.get_rng_state()
    check_model_fits_data(model, x, y, ["a", "b"])
    assert torch.equal(model[1].running_mean, statistics[0])
    assert torch.equal(model[1].num_batches_tracked, statistics[1])
    assert torch.equal(torch.get_rng_state(), random_state)
    assert [m.training for m in model] == [True, True, False, True]
    model(x)  # in train mode, the same pass would have moved the statistics: the check above can fail
    assert not torch.equal(model[1].running_mean, statistics[0])


def test_the_loss_refuses_shapes_that_would_broadcast():
    from gd_torch.models import as_targets

    y = torch.zeros(5)
    assert as_targets(torch.ones(5, 1), y).shape == (5,)
    for shape in [(5, 2), (1, 5), (5, 1, 1), ()]:
        with pytest.raises(ValueError, match="one prediction per point"):
            as_targets(torch.ones(shape), y)
