"""The logged trajectory against math done independently: a float64 NumPy loop of the same update
rule on random problems, and the closed form of the intercept-only descent."""

import json

import numpy as np
import pytest


def numpy_descent(x, y, slope, intercept, learning_rate, reduction, steps, learn_slope):
    """The article's loop in float64, generalised: returns (loss before, slope after, intercept after)
    for every step."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    scale = len(x) if reduction == "mean" else 1  # mean divides the loss and its gradient by N
    rows = []
    for _ in range(steps):
        residual = slope * x + intercept - y
        loss = np.sum(residual**2) / scale
        grad_intercept = 2 * np.sum(residual) / scale
        grad_slope = 2 * np.sum(residual * x) / scale
        intercept = intercept - learning_rate * grad_intercept
        if learn_slope:
            slope = slope - learning_rate * grad_slope
        rows.append((loss, slope, intercept))
    return np.array(rows)


def stable_learning_rate(x, reduction, learn_slope) -> float:
    """2 / largest eigenvalue of the loss Hessian: descent converges below it."""
    x = np.asarray(x, np.float64)
    scale = len(x) if reduction == "mean" else 1
    if learn_slope:
        hessian = 2 * np.array([[np.sum(x * x), np.sum(x)], [np.sum(x), len(x)]]) / scale
    else:
        hessian = np.array([[2 * len(x) / scale]])
    return 2 / np.linalg.eigvalsh(hessian).max()


def random_problem(seed: int, reduction: str, learn_slope: bool) -> dict:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    x = np.round(rng.uniform(-3, 3, n), 3)
    y = np.round(rng.normal(1.5 * x - 0.5, 1.0), 3)
    return dict(
        x=x.tolist(),
        y=y.tolist(),
        slope=round(float(rng.uniform(-3, 3)), 3),
        intercept=round(float(rng.uniform(-10, 10)), 3),
        learning_rate=float(rng.uniform(0.05, 0.9) * stable_learning_rate(x, reduction, learn_slope)),
        reduction=reduction,
        steps=int(rng.integers(1, 60)),
        learn_slope=learn_slope,
    )


def overrides(p: dict) -> list[str]:
    return [
        f"--data.init_args.x={json.dumps(p['x'])}",
        f"--data.init_args.y={json.dumps(p['y'])}",
        f"--model.model.init_args.slope={p['slope']}",
        f"--model.model.init_args.intercept={p['intercept']}",
        f"--model.model.init_args.learn_slope={p['learn_slope']}",
        f"--model.learning_rate={p['learning_rate']!r}",
        f"--model.reduction={p['reduction']}",
        f"--trainer.max_steps={p['steps']}",
        "--trainer.callbacks=[]",  # no table: the event files are what is compared
    ]


def logged(run) -> np.ndarray:
    columns = [run.scalars(tag) for tag in ("train/loss", "params/slope", "params/intercept")]
    for column in columns:
        assert [step for step, _ in column] == list(range(len(columns[0])))
    return np.array([[value for _, value in column] for column in columns]).T


@pytest.mark.parametrize("learn_slope", [False, True], ids=["intercept", "both"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("seed", range(4))
def test_trajectory_matches_float64_numpy(train, seed, reduction, learn_slope):
    p = random_problem(seed, reduction, learn_slope)
    run = train(*overrides(p))
    assert run.exit_code == 0, run.stderr
    expected = numpy_descent(**p)
    got = logged(run)
    assert got.shape == expected.shape
    # float32 training against a float64 reference: relative to each column's scale.
    scale = np.abs(expected).max(axis=0) + 1
    assert np.all(np.abs(got - expected) <= 2e-5 * scale), f"problem {p}\n{got}\n{expected}"


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("seed", range(3))
def test_intercept_follows_the_closed_form(train, seed, reduction):
    p = random_problem(100 + seed, reduction, learn_slope=False)
    run = train(*overrides(p))
    assert run.exit_code == 0, run.stderr
    x, y = np.asarray(p["x"]), np.asarray(p["y"])
    n = len(x)
    best = np.mean(y - p["slope"] * x)  # b*
    # b_(k+1) - b* = (1 - 2*lr*N) * (b_k - b*) for the sum; the mean divides the gradient by N.
    factor = 1 - 2 * p["learning_rate"] * (n if reduction == "sum" else 1)
    k = np.arange(1, p["steps"] + 1)
    expected_b = best + factor**k * (p["intercept"] - best)
    got_b = np.array([value for _, value in run.scalars("params/intercept")])
    assert np.all(np.abs(got_b - expected_b) <= 2e-5 * (abs(p["intercept"]) + abs(best) + 1))
    assert run.summary["params"]["intercept"] == pytest.approx(expected_b[-1], abs=2e-5 * (abs(best) + 10))


def test_article_closed_form(train):
    """b_k = 1 + 9 * 0.9**k, loss_k = 5 * (b_k - 1)**2, read from TensorBoard."""
    run = train("--trainer.callbacks=[]")
    k = np.arange(30)
    b = np.array([v for _, v in run.scalars("params/intercept")])
    loss = np.array([v for _, v in run.scalars("train/loss")])
    np.testing.assert_allclose(b, 1 + 9 * 0.9 ** (k + 1), rtol=2e-6)
    np.testing.assert_allclose(loss, 5 * (9 * 0.9**k) ** 2, rtol=2e-5)


@pytest.mark.parametrize("learn_slope, learn_intercept", [(True, True), (False, True), (True, False)])
def test_least_squares_optimum_of_a_line(learn_slope, learn_intercept):
    """Where descent converges (drawn in TensorBoard as optimum/<name>): numpy's lstsq, frozen parameters held."""
    import torch

    from gd_torch.models import Line
    from gd_torch.optimum import least_squares

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=200), rng.normal(1.5 * rng.normal(size=200) - 0.3, 1.0)
    line = Line(slope=0.7, intercept=-2.0, learn_slope=learn_slope, learn_intercept=learn_intercept)
    got = least_squares(line, [(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))])
    columns = [x] * learn_slope + [np.ones_like(x)] * learn_intercept
    target = y - (0.7 * x if not learn_slope else 0) - (-2.0 if not learn_intercept else 0)
    expected = np.linalg.lstsq(np.column_stack(columns), target, rcond=None)[0]
    names = ["slope"] * learn_slope + ["intercept"] * learn_intercept
    assert got == pytest.approx(dict(zip(names, expected, strict=True)), rel=1e-5, abs=1e-6)
