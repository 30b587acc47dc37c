"""The command line: dotted overrides, --help and --print_config, the device flag, and one-line
errors with exit code 2 for bad input."""

import pytest
import torch
import yaml

from conftest import ARTICLE, article_columns


def test_mean_reduction_with_five_times_the_rate_retraces_the_article(train):
    run = train("--model.learning_rate", "0.05", "--model.reduction", "mean")
    assert run.exit_code == 0, run.stderr
    b_column, loss_column = article_columns()
    b = [value for _, value in run.scalars("params/intercept")]
    loss = [value for _, value in run.scalars("train/loss")]
    assert [round(v, 4) for v in b] == b_column
    # The mean is the sum over N = 5 points divided by 5.
    assert loss == pytest.approx([v / 5 for v in loss_column], abs=0.005 / 5 + 1e-6)
    assert run.table[0] == "Step  0 | b = 9.1000 | loss = 81.00"


def test_every_constructor_argument_is_a_dotted_flag(train):
    run = train(
        "--trainer.max_steps",
        "3",
        "--model.model.init_args.intercept",
        "4",
        "--data.init_args.y",
        "[1, 3, 5, 7, 9]",
    )
    assert run.exit_code == 0, run.stderr
    # b_1 = 4 - 0.01 * 2 * 5 * (4 - 1) = 3.7
    assert len(run.table) == 3 and run.table[0] == "Step  0 | b = 3.7000 | loss = 45.00"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model.lerning_rate", "0.1"], ["unknown key model.lerning_rate on the command line"]),
        (["--model.learning_rate", "fast"], ["model.learning_rate", "fast", "a number"]),
        (["--model.learning_rate", "-1"], ["model.learning_rate", "-1", "> 0"]),
        (["--model.reduction", "avg"], ["model.reduction", "avg", "mean", "sum"]),
        (["--data.init_args.x", "[1, 2]"], ["data.init_args.x", "2 points", "y has 5"]),
    ],
)
def test_bad_input_is_one_clean_line_and_no_run(train, args, words):
    run = train(*args)
    assert run.exit_code == 2
    assert "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    for word in words:
        assert word in line
    assert run.run_dirs == []


def test_unknown_key_in_a_config_file_is_an_error(train, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({"model": {"learning_rat": 0.1}}))
    run = train("--config", str(config))
    assert run.exit_code == 2
    assert "learning_rat" in run.stderr and run.stderr.startswith("error:")
    assert run.run_dirs == []


def test_help_lists_the_config_keys(capsys):
    from gd_torch.command import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for key in ("--config", "--model.learning_rate", "--model.reduction", "--trainer.max_steps", "--data"):
        assert key in out


def test_print_config_shows_the_resolved_config(capsys):
    from gd_torch.command import main

    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(ARTICLE), "--model.learning_rate", "0.02", "--print_config"])
    assert exit_.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["learning_rate"] == 0.02
    assert config["model"]["model"]["init_args"] == {
        "slope": 2.0,
        "intercept": 10.0,
        "learn_slope": False,
        "learn_intercept": True,
    }
    assert config["trainer"]["accelerator"] == "auto"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: only where 'auto' picks a GPU can this fail")
def test_accelerator_cpu_forces_the_cpu(train):
    run = train("--trainer.accelerator", "cpu", "--trainer.max_steps", "1")
    assert run.exit_code == 0
    assert run.stdout.splitlines()[0] == "Training on cpu"
    assert run.summary["device"] == "cpu"


def test_only_inapplicable_framework_notices_are_silenced(caplog):
    import logging

    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from gd_torch.quiet import silence_inapplicable_warnings

    silence_inapplicable_warnings()
    with caplog.at_level(logging.INFO):
        rank_zero_info("TPU available: False, using: 0 TPU cores")
        rank_zero_info("You are using a CUDA device ('X') that has Tensor Cores. To properly ...")
        rank_zero_info("GPU available: False, used: False")
        rank_zero_info("`Trainer.fit` stopped: `max_steps=30` reached.")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_a_warning_under_torchrun_restarts_with_the_shared_store(monkeypatch):
    """The variables torchrun gives its workers: with restarts and the shared rendezvous store, a
    restarted gloo group may read the previous group's addresses; the line says what to set."""
    from gd_torch.launch import torchrun_restart_warning

    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in torchrun_restart_warning()
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # what that variable makes torchrun say
    assert torchrun_restart_warning() is None
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "0")
    assert torchrun_restart_warning() is None
