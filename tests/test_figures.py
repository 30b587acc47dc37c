"""The picture of the descent: trajectory.png of the expected size, whose plotted path (read back
from the figure's own line, saved in the PNG) is where gradient descent goes: the closed form of the
article's intercept, and a float64 NumPy run of the two-parameter descent."""

import json
import struct

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, read_events

CONFIGS = REPO / "configs"


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def plotted_path(run) -> list[list[float]]:
    return json.loads(Image.open(run.run_dir / "trajectory.png").text["gd_torch.path"])


def red_pixels(path) -> int:
    """Pixels of the path's colour (matplotlib's C3, #d62728), give or take antialiasing."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - [214, 39, 40]).sum(axis=-1) < 30).sum())


def test_one_parameter_the_loss_curve_and_the_visited_points(train):
    run = train(config=CONFIGS / "converge.yaml")
    assert run.exit_code == 0, run.stderr
    assert png_size(run.run_dir / "trajectory.png") == (800, 500)
    # b_k = 1 + 9 * 0.9**k and L(b) = 5 (b - 1)**2 for k = 0 .. the steps taken (the last: where it ended).
    b = 1 + 9 * 0.9 ** np.arange(run.summary["steps"] + 1)
    expected = np.stack([b, 5 * (b - 1) ** 2], axis=1)
    path = np.asarray(plotted_path(run))
    assert path[:, 0] == pytest.approx(expected[:, 0], rel=1e-6)
    assert path[:, 1] == pytest.approx(expected[:, 1], rel=1e-4, abs=1e-6 * expected[0, 1])  # float32
    assert red_pixels(run.run_dir / "trajectory.png") > 500  # and it is drawn
    events = read_events(run.run_dir)
    assert events.Tags()["images"] == ["trajectory"]
    events = read_events(run.run_dir)
    assert events.Tags()["images"] == ["trajectory"]


def test_two_parameters_contours_and_the_path(train):
    run = train(config=CONFIGS / "learn_both.yaml")
    assert run.exit_code == 0, run.stderr
    assert png_size(run.run_dir / "trajectory.png") == (800, 500)
    # The same descent in float64 NumPy: learning rate 0.02 on the sum of squared errors of y = 2x + 1.
    x, y = np.arange(5.0), 2 * np.arange(5.0) + 1
    m, b, path = 0.0, 10.0, [(0.0, 10.0)]
    for _ in range(run.summary["steps"]):
        residual = m * x + b - y
        m, b = m - 0.02 * 2 * (residual * x).sum(), b - 0.02 * 2 * residual.sum()
        path.append((m, b))
    assert np.asarray(plotted_path(run)) == pytest.approx(np.asarray(path), rel=1e-4, abs=1e-5)
    assert red_pixels(run.run_dir / "trajectory.png") > 500


def test_no_figure_for_a_model_with_more_parameters(train):
    data = f"--data.init_args.path={REPO / 'data' / 'three_features.csv'}"
    run = train("--trainer.callbacks+=gd_torch.figures.TrajectoryFigure", data, config=CONFIGS / "csv.yaml")
    assert run.exit_code == 0, run.stderr
    assert not (run.run_dir / "trajectory.png").exists()
