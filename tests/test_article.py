"""The article end to end: `python scripts/train.py --config configs/article.yaml` prints the article's
table, logs the same values to TensorBoard at every step, and writes a matching summary.json."""

import pytest
import yaml

from conftest import ARTICLE, ARTICLE_ROWS, article_columns, run_command

pytestmark = pytest.mark.xdist_group("article_run")  # one worker: the runs these tests share are made once


@pytest.fixture(scope="session")  # once per worker, even when other files run between its tests
def article_run(tmp_path_factory):
    return run_command("--config", str(ARTICLE), save_dir=tmp_path_factory.mktemp("runs"))


def test_exits_cleanly_and_says_where_it_trains(article_run):
    assert article_run.exit_code == 0, article_run.stderr
    assert article_run.stdout.splitlines()[0] == "Training on cpu"
    assert "Traceback" not in article_run.stderr
    assert "Warning" not in article_run.stderr


def test_prints_the_articles_table_row_for_row(article_run):
    assert len(ARTICLE_ROWS) == 30
    # The article's text lost the padding of `{step:2d}`; the code's own format keeps it.
    assert article_run.table[0] == "Step  0 | b = 9.1000 | loss = 405.00"
    assert [" ".join(row.split()) for row in article_run.table] == ARTICLE_ROWS


def test_tensorboard_holds_every_step_with_the_articles_values(article_run):
    b_column, loss_column = article_columns()
    assert article_run.tags() == [
        "grads/intercept",
        "hparams/final_loss",
        "hparams/steps",
        "metrics/train/mae",
        "metrics/train/mse",
        "metrics/train/r2",
        "metrics/train/rmse",
        "optimum/intercept",
        "params/intercept",
        "params/slope",
        "train/learning_rate",
        "train/loss",
        "train/step_size",
    ]
    intercept = article_run.scalars("params/intercept")
    loss = article_run.scalars("train/loss")
    slope = article_run.scalars("params/slope")
    assert [step for step, _ in intercept] == list(range(30))
    assert [step for step, _ in loss] == list(range(30))
    assert [step for step, _ in slope] == list(range(30))
    assert [round(value, 4) for _, value in intercept] == b_column
    assert [round(value, 2) for _, value in loss] == loss_column
    assert {value for _, value in slope} == {2.0}  # frozen


def test_summary_agrees_with_the_table(article_run):
    summary = article_run.summary
    b_column, _ = article_columns()
    assert summary["steps"] == 30
    assert summary["stop_reason"] == "max_steps"
    assert summary["device"] == "cpu"
    assert summary["params"]["slope"] == 2.0
    assert round(summary["params"]["intercept"], 4) == b_column[-1]
    # At the final parameters, one update past the table's last loss: 5 * (b_30 - 1)**2.
    b_30 = 1 + 9 * 0.9**30
    assert summary["final_loss"] == pytest.approx(5 * (b_30 - 1) ** 2, rel=1e-5)
    assert 0 < summary["seconds"] < 60
    # Every residual is b_30 - 1, and the targets' squares about their mean sum to 40.
    assert summary["metrics"]["train"] == pytest.approx(
        {"mse": (b_30 - 1) ** 2, "rmse": b_30 - 1, "mae": b_30 - 1, "r2": 1 - 5 * (b_30 - 1) ** 2 / 40}, rel=1e-5
    )
    assert list(summary["metrics"]) == ["train"]  # nothing held out
    run_dir = article_run.run_dir
    assert f"run directory: {run_dir}" in article_run.stdout
    assert f"tensorboard --logdir {run_dir}" in article_run.stdout
    assert f"final loss: {summary['final_loss']:.6g}" in article_run.stdout


def test_run_directory_holds_config_and_last_checkpoint(article_run):
    run_dir = article_run.run_dir
    assert run_dir.parent.name == "article" and run_dir.name == "version_0"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["learning_rate"] == 0.01
    assert saved["model"]["reduction"] == "sum"
    assert saved["trainer"]["max_steps"] == 30
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "trajectory.png").is_file()


def test_a_second_run_gets_its_own_version(train):
    first, second = train(), train()
    assert first.exit_code == second.exit_code == 0
    assert [d.name for d in second.run_dirs] == ["version_0", "version_1"]
    # Both tables are complete: the second run did not touch the first one's logs.
    assert first.table == second.table
    for run_dir in second.run_dirs:
        assert (run_dir / "summary.json").is_file()
