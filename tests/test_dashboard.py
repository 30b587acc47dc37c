"""The TensorBoard a learner opens, read through a real TensorBoard server's HTTP data API over a
learning-rate sweep made by the test: runs, scalars, the custom-scalars layout, the hparams
experiment, the trajectory image, the config text. The server is stopped at the end, also when a test fails."""

import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from conftest import ARTICLE, REPO, article_columns, free_port, get_json, local_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tensorboard_server")]

RUNS = ["article_sweep/lr_0.01/version_0", "article_sweep/lr_0.3/version_0"]


@pytest.fixture(scope="session")  # once per worker, even when other files run between its tests
def logdir(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("sweep")
    sweep = [sys.executable, "scripts/sweep.py", "--config", str(ARTICLE), "--learning-rates", "0.01", "0.3"]
    sweep += ["--save-dir", str(save_dir)]  # article.yaml draws the trajectory
    done = subprocess.run(sweep, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # the diverging run does not stop the sweep
    assert "0.3            diverged" in done.stdout
    return save_dir


@pytest.fixture(scope="session")  # once per worker, even when other files run between its tests
def tensorboard(logdir):
    """GET (or POST with ``body``) a path of a TensorBoard server started on a free local port."""
    port = free_port()
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]

    def fetch(path: str, body: dict | None = None):
        return get_json(f"http://127.0.0.1:{port}{path}", body)

    with local_server([*argv, "--port", str(port), "--load_fast=false"], lambda: sorted(fetch("/data/runs")) == RUNS,
                      "TensorBoard, listing the runs"):  # fmt: skip
        yield fetch


def scalars(fetch, run: str, tag: str) -> list[tuple[int, float]]:
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    return [(step, value) for _, step, value in fetch(f"/data/plugin/scalars/scalars?{query}")]


def test_the_article_run_shows_the_articles_values(tensorboard):
    b_column, loss_column = article_columns()
    loss = scalars(tensorboard, RUNS[0], "train/loss")
    intercept = scalars(tensorboard, RUNS[0], "params/intercept")
    assert [step for step, _ in loss] == [step for step, _ in intercept] == list(range(30))
    assert [round(value, 4) for _, value in intercept] == b_column
    assert [round(value, 2) for _, value in loss] == loss_column
    # The step the article takes from b = 10: gradient 90, step 0.9, at learning rate 0.01.
    assert scalars(tensorboard, RUNS[0], "grads/intercept")[0] == (0, pytest.approx(90.0))
    assert scalars(tensorboard, RUNS[0], "train/step_size")[0] == (0, pytest.approx(0.9))
    assert scalars(tensorboard, RUNS[0], "train/learning_rate")[0] == (0, pytest.approx(0.01))
    assert scalars(tensorboard, RUNS[0], "optimum/intercept") == [(0, 1.0), (29, 1.0)]


def test_the_diverging_run_is_kept_up_to_its_last_step(tensorboard):
    loss = scalars(tensorboard, RUNS[1], "train/loss")
    assert [step for step, _ in loss] == list(range(8))  # diverged at step 7
    assert loss[-1][1] == pytest.approx(405 * 4**7)


def test_custom_scalars_layout(tensorboard):
    (category,) = tensorboard("/data/plugin/custom_scalars/layout")["category"]
    assert category["title"] == "Gradient descent"
    charts = {chart["title"]: chart["multiline"]["tag"] for chart in category["chart"]}
    assert charts == {
        "intercept (and its optimum)": ["params/intercept", "optimum/intercept"],
        "loss": ["train/loss"],
        "step size": ["train/step_size"],
        "gradients": ["grads/.*"],
    }


def test_hparams_experiment_compares_the_runs(tensorboard):
    experiment = tensorboard("/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {info["name"] for info in experiment["hparamInfos"]}
    assert {"learning_rate", "reduction", "init/intercept", "max_steps", "batch_size", "stop_reason"} <= hparams
    metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
    assert metrics == {
        "hparams/final_loss",
        "hparams/steps",
        *(f"metrics/train/{m}" for m in ("mse", "rmse", "mae", "r2")),
    }
    assert scalars(tensorboard, RUNS[0], "hparams/steps") == [(29, 30.0)]
    assert scalars(tensorboard, RUNS[0], "hparams/final_loss")[0][1] == pytest.approx(5 * (9 * 0.9**30) ** 2, rel=1e-5)
    for run in RUNS:  # no placeholder hp_metric = -1
        assert "hp_metric" not in tensorboard("/data/plugin/scalars/tags")[run]


def test_the_resolved_config_is_in_the_text_tab(tensorboard):
    tags = tensorboard("/data/plugin/text/tags")
    assert tags == {run: ["config/text_summary"] for run in RUNS}
    query = urllib.parse.urlencode({"run": RUNS[1], "tag": "config/text_summary"})
    (entry,) = tensorboard(f"/data/plugin/text/text?{query}")
    assert "learning_rate: 0.3" in entry["text"] and "reduction: sum" in entry["text"]


def test_the_picture_is_in_the_images_tab(tensorboard):
    tags = tensorboard("/data/plugin/images/tags")
    assert {run: list(run_tags) for run, run_tags in tags.items()} == {run: ["trajectory"] for run in RUNS}
