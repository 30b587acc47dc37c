"""The Python API: gd_torch.fit returns the run (summary, run directory, trained model, history) for a
config file or a dict, again and again in one process, and raises ConfigError with the command's
error line for invalid input."""

import logging
import warnings

import pytest
import torch

import gd_torch

from conftest import ARTICLE, article_columns


def test_fit_returns_the_articles_run(tmp_path, capsys):
    run = gd_torch.fit(ARTICLE, f"--trainer.logger.init_args.save_dir={tmp_path}")
    assert run.exit_code == 0
    assert run.run_dir == tmp_path / "article" / "version_0"
    assert run.summary["steps"] == 30 and run.summary["stop_reason"] == "max_steps"
    b_column, loss_column = article_columns()
    assert [round(v, 4) for _, v in run.history["params/intercept"]] == b_column
    assert [round(v, 2) for _, v in run.history["train/loss"]] == loss_column
    with torch.no_grad():
        assert run.model(torch.tensor([0.0, 1.0])).tolist() == pytest.approx([1.38152, 3.38152], abs=1e-5)
    assert "Step 29 | b = 1.3815 | loss = 0.90" in capsys.readouterr().out


def test_fit_takes_a_dict_and_flags_and_runs_again(tmp_path):
    config = {
        "model": {"learning_rate": 0.05, "model": {"class_path": "gd_torch.models.Line"}},
        "data": {"class_path": "gd_torch.data.Points", "init_args": {"x": [0, 1, 2], "y": [1, 3, 5]}},
        "trainer": {"max_steps": 800, "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                                                   "init_args": {"save_dir": str(tmp_path), "name": "dict"}}},
    }  # fmt: skip
    first = gd_torch.fit(config)
    second = gd_torch.fit(config, "--model.learning_rate", "0.1")
    assert first.exit_code == second.exit_code == 0
    assert [first.run_dir.name, second.run_dir.name] == ["version_0", "version_1"]
    for run in (first, second):
        assert run.summary["params"] == pytest.approx({"slope": 2.0, "intercept": 1.0}, abs=1e-4)
    assert second.summary["learning_rate"] == 0.1


def test_invalid_input_raises_the_commands_error_line(tmp_path):
    with pytest.raises(gd_torch.ConfigError) as error:
        gd_torch.fit(ARTICLE, "--model.learning_rate=-1", f"--trainer.logger.init_args.save_dir={tmp_path}")
    assert str(error.value) == "model.learning_rate must be a finite number > 0 or auto, got -1.0"
    assert list(tmp_path.iterdir()) == []


def test_a_setting_found_invalid_as_the_run_sets_up_raises_too(tmp_path):
    with pytest.raises(gd_torch.ConfigError) as error:
        gd_torch.fit(ARTICLE, "--curvature.enforce=true", "--model.learning_rate=0.3",
                     f"--trainer.logger.init_args.save_dir={tmp_path}")  # fmt: skip
    assert str(error.value) == (
        "model.learning_rate: learning_rate 0.3 is 1.5x the stable bound 0.2 for SGD: expect divergence"
        " (curvature.enforce is true)"
    )
    assert list((tmp_path / "article").iterdir()) == []  # the run directory taken back


def test_a_diverging_run_is_returned_with_its_reason(tmp_path):
    run = gd_torch.fit(ARTICLE, "--model.learning_rate=0.3", f"--trainer.logger.init_args.save_dir={tmp_path}")
    assert run.exit_code == 1
    assert run.summary["stop_reason"] == "diverged"
    assert [step for step, _ in run.history["train/loss"]] == list(range(8))


def test_fit_leaves_the_processs_warning_and_logging_filters_as_it_found_them(tmp_path):
    """A notebook's later work still sees the warnings fit silenced for its run (before, they stayed
    silenced for good, and Lightning's info loggers kept fit's filters)."""
    names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
             "lightning.fabric.utilities.seed")  # fmt: skip
    warning_filters = list(warnings.filters)
    logger_filters = {name: list(logging.getLogger(name).filters) for name in names}
    run = gd_torch.fit(ARTICLE, f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.max_steps=2")
    assert run.exit_code == 0
    assert warnings.filters == warning_filters
    assert {name: logging.getLogger(name).filters for name in names} == logger_filters
    with pytest.raises(gd_torch.ConfigError):  # and when it raises
        gd_torch.fit(ARTICLE, f"--trainer.logger.init_args.save_dir={tmp_path}", "--model.learning_rate=-1")
    assert warnings.filters == warning_filters
    assert {name: logging.getLogger(name).filters for name in names} == logger_filters
