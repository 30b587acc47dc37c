"""The picture of the descent: trajectory.png of the expected size, whose plotted path (read back
from the figure's own line, saved in the PNG) is where TensorBoard says the run went."""

import json
import struct

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO

CONFIGS = REPO / "configs"


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def flat(points) -> list[float]:
    return [value for point in points for value in point]


def plotted_path(run) -> list[list[float]]:
    return json.loads(Image.open(run.run_dir / "trajectory.png").text["gd_torch.path"])


def test_one_parameter_the_loss_curve_and_the_visited_points(train):
    run = train(config=CONFIGS / "converge.yaml")
    assert run.exit_code == 0, run.stderr
    assert png_size(run.run_dir / "trajectory.png") == (800, 500)
    b = [10.0] + [value for _, value in run.scalars("params/intercept")]  # b_0, then after each step
    loss = [value for _, value in run.scalars("train/loss")] + [run.summary["final_loss"]]
    assert flat(plotted_path(run)) == pytest.approx(flat(zip(b, loss, strict=True)), rel=1e-6)
    events = EventAccumulator(str(run.run_dir), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["trajectory"]


def test_two_parameters_contours_and_the_path(train):
    run = train(config=CONFIGS / "learn_both.yaml")
    assert run.exit_code == 0, run.stderr
    assert png_size(run.run_dir / "trajectory.png") == (800, 500)
    slope = [0.0] + [value for _, value in run.scalars("params/slope")]
    intercept = [10.0] + [value for _, value in run.scalars("params/intercept")]
    assert flat(plotted_path(run)) == pytest.approx(flat(zip(slope, intercept, strict=True)), rel=1e-6)


def test_no_figure_for_a_model_with_more_parameters(train):
    data = f"--data.init_args.path={REPO / 'data' / 'three_features.csv'}"
    run = train("--trainer.callbacks+=gd_torch.figures.TrajectoryFigure", data, config=CONFIGS / "csv.yaml")
    assert run.exit_code == 0, run.stderr
    assert not (run.run_dir / "trajectory.png").exists()
