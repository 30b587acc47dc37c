"""Beyond the article with the same code: both parameters, CSV and synthetic data, mini-batches,
larger models, other optimizers, and a model written by the user, each against an exact answer."""

import numpy as np
import pytest
import torch
from torch import nn

from gd_torch.data import SyntheticLine

from conftest import REPO, read_events

CONFIGS = REPO / "configs"
THREE_FEATURES = REPO / "data" / "three_features.csv"


def lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with a bias column, in float64: (weights..., bias)."""
    design = np.column_stack([x.reshape(len(y), -1), np.ones(len(y))])
    return np.linalg.lstsq(design, y, rcond=None)[0]


def test_learn_both_reaches_the_least_squares_line(train):
    run = train(config=CONFIGS / "learn_both.yaml")
    assert run.exit_code == 0, run.stderr
    slope, intercept = lstsq(np.arange(5.0), np.array([1.0, 3, 5, 7, 9]))
    assert abs(run.summary["params"]["slope"] - slope) < 1e-3
    assert abs(run.summary["params"]["intercept"] - intercept) < 1e-3
    assert run.summary["stop_reason"] == "converged"
    assert run.table[0] == "Step  0 | m = -1.2000 | b = 9.0000 | loss = 165.00"


def test_synthetic_noisy_line_converges_to_least_squares(train):
    settings = dict(n=10_000, slope=2.0, intercept=1.0, noise_std=0.5, seed=3)
    flags = [f"--data.init_args.{key}={value}" for key, value in settings.items()]
    run = train(
        *flags,
        "--data.init_args.batch_size=null",
        "--model.learning_rate=0.5",
        "--trainer.max_steps=300",
        config=CONFIGS / "synthetic.yaml",
    )
    assert run.exit_code == 0, run.stderr
    x, y = SyntheticLine(**settings).make_points(torch.device("cpu"))  # the very points trained on
    slope, intercept = lstsq(x.double().numpy(), y.double().numpy())
    assert abs(slope - 2) < 0.05 and abs(intercept - 1) < 0.05  # the noise moves them a little
    assert run.summary["params"]["slope"] == pytest.approx(slope, abs=1e-4)
    assert run.summary["params"]["intercept"] == pytest.approx(intercept, abs=1e-4)


def test_multi_feature_csv_converges_to_least_squares(train):
    run = train(f"--data.init_args.path={THREE_FEATURES}", config=CONFIGS / "csv.yaml")
    assert run.exit_code == 0, run.stderr
    table = np.loadtxt(THREE_FEATURES, delimiter=",", skiprows=1)
    expected = lstsq(table[:, :3], table[:, 3])
    got = [*run.summary["params"]["weight"], run.summary["params"]["bias"]]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # A tensor parameter is logged as its norm at every step.
    norms = run.scalars("params/weight/norm")
    assert [step for step, _ in norms] == list(range(run.summary["steps"]))
    assert norms[-1][1] == pytest.approx(np.linalg.norm(expected[:3]), abs=1e-4)


def test_full_batch_equals_batch_size_n_bit_for_bit(train):
    full = train("--trainer.max_steps=50", "--model.model.init_args.learn_slope=true", "--model.learning_rate=0.02")
    batch_n = train(
        "--trainer.max_steps=50",
        "--model.model.init_args.learn_slope=true",
        "--model.learning_rate=0.02",
        "--data.init_args.batch_size=5",
    )
    for tag in ("train/loss", "params/slope", "params/intercept"):
        assert full.scalars(tag) == batch_n.scalars(tag)


def minibatch_run(train, seed: int):
    return train(
        "--data.init_args.batch_size=64",
        f"--data.init_args.seed={seed}",
        "--data.init_args.n=1000",
        "--trainer.max_steps=100",
        config=CONFIGS / "synthetic.yaml",
    )


def test_minibatch_run_is_reproducible_under_its_seed(train):
    first, second, other = minibatch_run(train, 5), minibatch_run(train, 5), minibatch_run(train, 6)
    assert first.exit_code == second.exit_code == other.exit_code == 0
    assert first.scalars("train/loss") == second.scalars("train/loss")
    assert first.summary["params"] == second.summary["params"]
    assert first.scalars("train/loss") != other.scalars("train/loss")


def test_minibatches_are_a_shuffled_partition_of_the_points(train):
    """1000 points in batches of 64: 16 steps per epoch, the last one of 40 points; the run's loss at
    step 15 is the float64 mean squared error over exactly those 40 points."""
    run = minibatch_run(train, 5)
    assert run.summary["steps"] == 100
    from gd_torch.data import Batches

    data = SyntheticLine(n=1000, noise_std=0.5, seed=5, batch_size=64)
    data.setup("fit")
    first_epoch = list(data.train_dataloader())
    assert [len(by) for _, by in first_epoch] == [64] * 15 + [40]
    bx, by = (t.double().numpy() for t in first_epoch[15])
    slope, intercept = (dict(run.scalars(f"params/{name}"))[14] for name in ("slope", "intercept"))
    assert dict(run.scalars("train/loss"))[15] == pytest.approx(np.mean((slope * bx + intercept - by) ** 2), rel=1e-5)

    x, y = torch.arange(10.0), torch.arange(10.0) * 2
    epochs = [list(Batches(x, y, 4, seed=1, epoch=lambda e=e: e)) for e in range(2)]
    for batches in epochs:
        assert [len(bx) for bx, _ in batches] == [4, 4, 2]
        assert sorted(torch.cat([bx for bx, _ in batches]).tolist()) == x.tolist()
        assert all(torch.equal(by, bx * 2) for bx, by in batches)
    assert torch.cat([bx for bx, _ in epochs[0]]).tolist() != torch.cat([bx for bx, _ in epochs[1]]).tolist()


@pytest.mark.slow
def test_mlp_lowers_its_loss_tenfold_and_logs_histograms(train):
    run = train("--data.init_args.path", str(REPO / "data" / "noisy_sine.csv"), config=CONFIGS / "mlp.yaml")
    assert run.exit_code == 0, run.stderr
    first_loss = run.scalars("train/loss")[0][1]
    assert run.summary["final_loss"] <= first_loss / 10
    assert "params/layers.0.weight/norm" in run.tags()
    events = read_events(run.run_dir)
    assert "params/layers.0.weight" in events.Tags()["histograms"]
    assert [e.step for e in events.Histograms("params/layers.0.weight")] == list(range(0, 2000, 100))


def test_sgd_momentum_and_another_optimizer_from_the_config(train):
    momentum = train("--model.momentum=0.5", "--trainer.max_steps=200")
    adam = train("--model.optimizer=torch.optim.Adam", "--model.learning_rate=0.5", "--trainer.max_steps=200")
    assert momentum.exit_code == adam.exit_code == 0
    assert momentum.summary["params"]["intercept"] == pytest.approx(1, abs=1e-4)
    assert adam.summary["params"]["intercept"] == pytest.approx(1, abs=1e-2)
    # Heavy-ball momentum changes the path: b_2 = b_1 - lr * g_1 + 0.5 * (b_1 - b_0) = 8.2900 - 0.45.
    assert momentum.scalars("params/intercept")[1][1] == pytest.approx(7.84, abs=1e-5)


def test_momentum_raises_the_stable_learning_rate(train):
    """With momentum beta the bound is (1 + beta) / N: 0.3 diverges with plain SGD, not with 0.9."""
    assert train("--model.learning_rate=0.3", "--model.momentum=0.9", "--trainer.max_steps=400").exit_code == 0
    run = train("--model.learning_rate=0.4", "--model.momentum=0.9")
    assert run.exit_code == 1 and "learning_rate < 0.38;" in run.stderr


class Parabola(nn.Module):
    """A model written by a user: y = a * x**2 + c."""

    def __init__(self, a: float = 0.0, c: float = 0.0) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.c = nn.Parameter(torch.tensor(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x**2 + self.c


def test_a_user_written_module_trains_through_class_path(train):
    run = train(
        "--model.model=test_beyond.Parabola",
        "--model.learning_rate=0.5",
        "--model.reduction=mean",
        "--data.init_args.x=[-1, -0.5, 0, 0.5, 1]",
        "--data.init_args.y=[5, 3.5, 3, 3.5, 5]",  # y = 2 x^2 + 3
        "--trainer.max_steps=500",
    )
    assert run.exit_code == 0, run.stderr
    assert run.summary["params"] == pytest.approx({"a": 2.0, "c": 3.0}, abs=1e-3)
    assert run.table[0].startswith("Step  0 | a = ")


@pytest.mark.parametrize(
    "content, flags, words",
    [
        (None, [], ["data.init_args.path", "no such file"]),
        ("x1,x2,x3,y\n1,2,3,4\n", ["--data.init_args.x=[x1,x9]"], ["data.init_args.x", "no column 'x9'", "x1, x2"]),
        ("x1,x2,x3,y\n1,2,3,4\n", ["--data.init_args.y=z"], ["data.init_args.y", "no column 'z'"]),
        ("x1,x2,x3,y\n1,2,3,4\n5,six,7,8\n", [], ["data.init_args.path", "line 3", "'x2'", "'six' is not a number"]),
        ("x1,x2,x3,y\n1,2,3,inf\n", [], ["line 2", "'y'", "'inf' is not a finite number"]),
        ("x1,x2,x3,y\n1,2,3\n", [], ["line 2 has 3 cells; the header has 4"]),
        ("", [], ["data.init_args.path", "is empty"]),
        ("x1,x2,x3,y\n", [], ["data.init_args.path", "no data rows"]),
    ],
    ids=["missing", "x column", "y column", "not a number", "not finite", "short row", "empty", "header only"],
)
def test_bad_csv_files(train, tmp_path, content, flags, words):
    path = tmp_path / "points.csv"
    if content is not None:
        path.write_text(content)
    run = train(f"--data.init_args.path={path}", *flags, config=CONFIGS / "csv.yaml")
    assert run.exit_code == 2
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: ") and str(path) in line
    for word in words:
        assert word in line
    assert run.run_dirs == []


@pytest.mark.slow
def test_compiled_loss_step_follows_eager(train):
    """torch.compile of the loss step (here on the CPU) gives the eager trajectory within float32."""
    args = ("--model.model.init_args.learn_slope=true", "--model.learning_rate=0.02", "--trainer.max_steps=60")
    eager, compiled = train(*args), train(*args, "--model.compile=true")
    assert eager.exit_code == compiled.exit_code == 0, compiled.stderr
    for tag in ("train/loss", "params/slope", "params/intercept"):
        got, want = compiled.scalars(tag), eager.scalars(tag)
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5, abs=1e-5)
