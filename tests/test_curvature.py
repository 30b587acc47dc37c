"""The learning rate that works, for any model: the loss Hessian's largest eigenvalue against the
closed form and float64 NumPy, the stable bound in the console, summary.json and the divergence
message, learning_rate: auto, the sharpness in TensorBoard, and the predicted step count."""

import json
import math

import numpy as np
import pytest
import torch
from tensorboard.plugins.custom_scalar.layout_pb2 import Layout
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from gd_torch.curvature import LossOfParameters, lanczos_top, spectrum
from gd_torch.data import CSVPoints
from gd_torch.models import MLP
from gd_torch.stability import Optimizer, contraction, stable_learning_rate

from conftest import REPO, assert_clean_error, read_events

CONFIGS = REPO / "configs"
HOUSES = REPO / "data" / "houses.csv"
FEATURES = ["area_m2", "rooms", "age_years", "distance_km", "lot_m2", "income_eur"]
RAW = (f"--data.init_args.path={HOUSES}", "--data.init_args.standardize=false")


@pytest.mark.parametrize("reduction, eigenvalue, bound", [("sum", 10, 0.2), ("mean", 2, 1.0)])
def test_the_articles_curvature(train, reduction, eigenvalue, bound):
    run = train(f"--model.reduction={reduction}", "--trainer.max_steps=1")
    assert run.exit_code == 0, run.stderr
    curvature = run.summary["curvature"]
    assert curvature["max_eigenvalue"] == pytest.approx(eigenvalue, rel=1e-12)
    assert curvature["stable_learning_rate"] == pytest.approx(bound, rel=1e-12)
    assert curvature["quadratic"] is True
    assert f"Stable for learning_rate < {bound:g}; using 0.01 (largest Hessian eigenvalue {eigenvalue})" in run.stdout
    assert run.summary["learning_rate"] == 0.01


def houses_train_split() -> np.ndarray:
    data = CSVPoints(str(HOUSES), FEATURES, "price_keur", val_fraction=0.15, test_fraction=0.15)
    data.setup("fit")
    return data.splits["train"][0].double().numpy()


def test_unscaled_table_eigenvalues_and_the_bound_in_the_divergence_message(train):
    """real.yaml without standardization: the Hessian 2/N X^T X (bias column included) spans 10 orders
    of magnitude, and learning rate 0.25 blows up with the bound named."""
    x = houses_train_split()
    design = np.column_stack([x, np.ones(len(x))])
    eigenvalues = np.linalg.eigvalsh(2 * design.T @ design / len(x))
    run = train(*RAW, config=CONFIGS / "real.yaml")
    assert run.exit_code == 1
    curvature = run.summary["curvature"]
    assert curvature["max_eigenvalue"] == pytest.approx(eigenvalues.max(), rel=1e-3)
    assert curvature["min_eigenvalue"] == pytest.approx(eigenvalues.min(), rel=1e-3)
    assert curvature["condition_number"] == pytest.approx(eigenvalues.max() / eigenvalues.min(), rel=1e-3)
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "training diverged at step" in error
    bound = float(error.split("learning_rate < ")[1].split(";")[0])
    assert bound == pytest.approx(2 / eigenvalues.max(), rel=1e-3)
    assert "got 0.25" in error


def test_auto_descends_on_the_unscaled_table(train):
    x = houses_train_split()
    design = np.column_stack([x, np.ones(len(x))])
    largest = np.linalg.eigvalsh(2 * design.T @ design / len(x)).max()
    run = train(*RAW, "--model.learning_rate=auto", "--trainer.max_steps=300", config=CONFIGS / "real.yaml")
    assert run.exit_code == 0, run.stderr
    assert run.summary["learning_rate"] == pytest.approx(1 / largest, rel=1e-3)  # half the bound 2 / lambda
    assert "(learning_rate: auto;" in run.stdout
    losses = [value for _, value in run.scalars("train/loss")]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert run.summary["stop_reason"] != "diverged"
    events = read_events(run.run_dir)
    start = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["learning_rate"].number_value == run.summary["learning_rate"]


def test_auto_with_an_optimizer_without_a_bound_is_refused(train):
    run = train("--model.learning_rate=auto", "--model.optimizer=torch.optim.Adam")
    assert_clean_error(run, "model.learning_rate", "auto", "plain SGD")


class OnceDifferentiable(torch.nn.Module):
    """The article's line through an operation autograd differentiates once only (its gradient is
    computed outside autograd's graph), as some custom kernels are."""

    class Shift(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, b):
            return 2 * x + b

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            return 2 * grad, grad.sum()

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        return self.Shift.apply(x, self.b)


def test_a_model_whose_hessian_cannot_be_computed_trains_and_says_so_in_one_line(train):
    run = train("--model.model=test_curvature.OnceDifferentiable")
    assert run.exit_code == 0, run.stderr
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("Curvature skipped")]
    # Not a Hessian of zeros (autograd has no second derivative to give, and said none before).
    assert line == (
        "Curvature skipped: the loss Hessian cannot be computed: RuntimeError: the model's gradient cannot be"
        " differentiated again (an operation of the model is differentiated only once by autograd)"
    )
    assert "curvature" not in run.summary and "Stable for" not in run.stdout
    assert run.summary["params"]["b"] == pytest.approx(1 + 9 * 0.9**30, rel=1e-5)  # the article's descent


def test_a_users_parabola_gets_its_bound_in_the_divergence_message(train):
    """y = a x^2 + c with the mean: H = (2/N) [[sum x^4, sum x^2], [sum x^2, N]], constant."""
    x = np.array([-1, -0.5, 0, 0.5, 1])
    hessian = 2 / len(x) * np.array([[np.sum(x**4), np.sum(x**2)], [np.sum(x**2), len(x)]])
    (a, b), d = hessian[0], hessian[1, 1]
    largest = (a + d) / 2 + math.sqrt(((a - d) / 2) ** 2 + b**2)
    run = train(
        "--model.model=test_beyond.Parabola",
        "--model.reduction=mean",
        "--model.learning_rate=1.2",
        "--data.init_args.x=[-1, -0.5, 0, 0.5, 1]",
        "--data.init_args.y=[5, 3.5, 3, 3.5, 5]",
        "--trainer.max_steps=500",
    )
    assert run.exit_code == 1
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    bound = float(error.split("learning_rate < ")[1].split(";")[0])
    assert bound == pytest.approx(2 / largest, rel=1e-3)
    assert run.summary["curvature"]["quadratic"] is True  # linear in a and c: the bound holds everywhere


def test_mlp_sharpness_in_tensorboard(train):
    run = train(
        f"--data.init_args.path={REPO / 'data' / 'noisy_sine.csv'}",
        "--tensorboard.sharpness_every=10",
        "--trainer.max_steps=60",
        config=CONFIGS / "mlp.yaml",
    )
    assert run.exit_code == 0, run.stderr
    sharpness = run.scalars("train/sharpness")
    assert [step for step, _ in sharpness] == list(range(0, 60, 10))
    assert all(math.isfinite(value) and value > 0 for _, value in sharpness)
    assert "train/stability_limit" not in run.tags()  # Adam: no known bound, no line drawn
    events = read_events(run.run_dir)
    (config,) = events.Tensors("custom_scalars__config__")
    charts = {
        chart.title: list(chart.multiline.tag)
        for chart in Layout.FromString(config.tensor_proto.string_val[0]).category[0].chart
    }
    assert charts["sharpness (and the edge of stability)"] == ["train/sharpness", "train/stability_limit"]
    assert "no bound is known for Adam" in run.stdout


def test_sgd_sharpness_meets_its_stability_limit_two_over_lr(train):
    run = train(
        f"--data.init_args.path={REPO / 'data' / 'noisy_sine.csv'}",
        "--model.optimizer=null",
        "--model.learning_rate=0.1",
        "--tensorboard.sharpness_every=20",
        "--trainer.max_steps=40",
        "--trainer.callbacks=[]",
        config=CONFIGS / "mlp.yaml",
    )
    assert run.exit_code == 0, run.stderr
    assert run.scalars("train/stability_limit") == [(0, pytest.approx(20.0)), (20, pytest.approx(20.0))]
    # The first sharpness is the curvature the run started from, one update later.
    first = run.scalars("train/sharpness")[0][1]
    assert first == pytest.approx(run.summary["curvature"]["max_eigenvalue"], rel=0.2)


def test_lanczos_finds_the_top_eigenvalue_of_a_network():
    torch.manual_seed(0)
    model = MLP(1, [16, 16])  # 321 values (Lanczos above 64), against the dense Hessian
    x = torch.linspace(-3, 3, 200)
    y = torch.sin(x)
    found = spectrum(model, x, y, divisor=len(y))  # the mean
    loss = LossOfParameters(model, x, y, divisor=len(y))
    dense, _ = loss.hessian_and_gradient(loss.start)
    assert found.max_eigenvalue == pytest.approx(torch.linalg.eigvalsh(dense)[-1].item(), rel=1e-4)
    assert found.quadratic is False


def test_lanczos_on_a_known_matrix():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(200, 200)))
    eigenvalues = np.concatenate([[-50.0], np.linspace(0, 10, 198), [12.0]])  # the largest, not the widest
    matrix = torch.tensor(q @ np.diag(eigenvalues) @ q.T)
    top, vector = lanczos_top(lambda v: matrix @ v, torch.ones(200, dtype=torch.float64))
    assert top == pytest.approx(12.0, rel=1e-4)
    assert torch.allclose(matrix @ vector, top * vector, atol=1e-2)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.5, True), (0.9, True)])
def test_sgd_bounds_are_where_the_recurrence_turns_unstable(momentum, nesterov):
    """On a 1-D quadratic of curvature 4, PyTorch's own SGD converges just below the bound and
    diverges just above it; the contraction factor crosses 1 there."""
    bound = stable_learning_rate(4.0, Optimizer("SGD", momentum, nesterov))
    factors = {0.98: True, 1.02: False}  # stable?
    # One parameter per factor, each in its own group at its own rate: independent descents, one loop.
    params = {factor: torch.nn.Parameter(torch.tensor(1.0)) for factor in factors}
    groups = [{"params": [p], "lr": bound * factor} for factor, p in params.items()]
    optimizer = torch.optim.SGD(groups, momentum=momentum, nesterov=nesterov)
    for _ in range(3000):
        optimizer.zero_grad()
        sum(2 * p**2 for p in params.values()).backward()  # curvature 4 each
        optimizer.step()
    for factor, stable in factors.items():
        assert (abs(params[factor].item()) < 1e-3) is stable, (factor, params[factor].item())
        rate = contraction(torch.tensor([4.0], dtype=torch.float64), bound * factor, momentum, nesterov)
        assert (rate < 1) is stable


def test_no_bound_for_other_optimizers():
    assert stable_learning_rate(10.0, Optimizer("Adam")) is None
    assert stable_learning_rate(-1.0, Optimizer()) is None  # the loss curves down: no step too long


@pytest.mark.parametrize("config, flags", [("converge.yaml", []), ("real.yaml", [f"--data.init_args.path={HOUSES}"])])
def test_predicted_steps_beside_the_steps_taken(train, config, flags):
    run = train(*flags, config=CONFIGS / config)
    assert run.exit_code == 0, run.stderr
    curvature = run.summary["curvature"]
    assert curvature["predicted_steps_exact"] is True
    # float64 arithmetic against the float32 run: the same count, or within 3% of it.
    assert curvature["predicted_steps"] == pytest.approx(run.summary["steps"], rel=0.03)
    assert f"{run.summary['steps']:,} taken, {curvature['predicted_steps']:,} predicted" in run.stdout
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["curvature"]["condition_number"] >= 1
