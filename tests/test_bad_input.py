"""Every kind of bad input ends the same way: exit code 2, one `error:` line on stderr naming the key
or file, the bad value and what is allowed, no traceback, and no run directory."""

from pathlib import Path

import pytest
import torch
import yaml

from conftest import ARTICLE, REPO, assert_clean_error, train_in_process


def article_with(tmp_path: Path, change) -> Path:
    """A copy of a config with one edit: ``change(config_dict)``."""
    config = yaml.safe_load(ARTICLE.read_text())
    change(config)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_file_missing(train, tmp_path):
    run = train(config=tmp_path / "nope.yaml")
    assert_clean_error(run, "--config", "nope.yaml", "No such file")


def test_yaml_syntax_error_names_file_and_line(train, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  learning_rate: 0.01\n  reduction: [sum\ntrainer: {}\n")
    run = train(config=bad)
    assert_clean_error(run, "bad.yaml", "line 4", "invalid YAML")


def test_unknown_key(train, tmp_path):
    config = article_with(tmp_path, lambda c: c["model"].update(lerning_rate=0.1))
    assert_clean_error(train(config=config), "lerning_rate", "model")


def test_unknown_flag(train):
    assert_clean_error(train("--model.lerning_rate", "0.1"), "unknown key model.lerning_rate", "model.learning_rate?")


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--trainer.max_steps", "many", ["trainer.max_steps: expected an integer, got many"]),
        ("--data.init_args.x", "[0, 1, a, 3, 4]", ["data.init_args.x: expected a number, got a"]),
        ("--model.model.init_args.slope", "steep", ["model.model.init_args.slope: expected a number, got steep"]),
    ],
)
def test_wrong_type(train, flag, value, words):
    assert_clean_error(train(flag, value), *words)


@pytest.mark.parametrize("value", ["0", "-0.01", ".inf", ".nan"])
def test_learning_rate_must_be_positive_and_finite(train, value):
    assert_clean_error(train("--model.learning_rate", value), "model.learning_rate", "> 0", "finite")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_steps_must_be_at_least_one(train, value):
    assert_clean_error(train("--trainer.max_steps", value), "trainer.max_steps", f"got {value}", ">= 1")


def test_tolerance_must_not_be_negative(train):
    run = train("--trainer.callbacks.tolerance=-1e-4", config=REPO / "configs" / "converge.yaml")
    assert_clean_error(run, "trainer.callbacks[2].init_args.tolerance", "-0.0001", ">= 0")


def test_reduction_must_be_mean_or_sum(train):
    assert_clean_error(train("--model.reduction", "avg"), "model.reduction", "avg", "mean", "sum")


def test_x_and_y_must_have_the_same_length(train):
    run = train("--data.init_args.x", "[0, 1, 2]")
    assert_clean_error(run, "data.init_args.x", "3 points", "y has 5", "same length")


def test_no_points(train):
    run = train("--data.init_args.x", "[]", "--data.init_args.y", "[]")
    assert_clean_error(run, "data.init_args", "no points")


@pytest.mark.parametrize("value, shown", [(".nan", "nan"), (".inf", "inf"), ("-.inf", "-inf")])
def test_data_must_be_finite(train, value, shown):
    run = train("--data.init_args.y", f"[1, 3, {value}, 7, 9]")
    assert_clean_error(run, "data.init_args.y[2]", shown, "finite")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_asked_for_where_there_is_none(train, accelerator):
    run = train("--trainer.accelerator", accelerator)
    assert_clean_error(run, "trainer.accelerator", repr(accelerator), "no CUDA GPU", "'cpu'")


def test_save_dir_that_cannot_be_written(train, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    run = train(save_dir=a_file / "runs")
    assert_clean_error(run, "trainer.logger.init_args.save_dir", str(a_file), "not a directory")


def test_checkpoint_that_does_not_exist(train, tmp_path):
    run = train("--ckpt_path", str(tmp_path / "missing.ckpt"))
    assert_clean_error(run, "ckpt_path", "missing.ckpt")


def test_a_named_version_that_exists_is_not_overwritten(train, tmp_path):
    first = train("--trainer.logger.init_args.version", "7")
    assert first.exit_code == 0
    summary = (first.run_dir / "summary.json").read_text()
    run = train("--trainer.logger.init_args.version", "7")
    assert run.exit_code == 2 and "already exists" in run.stderr and "never overwritten" in run.stderr
    assert (first.run_dir / "summary.json").read_text() == summary


def test_a_file_that_is_not_a_checkpoint(train, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    assert_clean_error(train("--ckpt_path", str(junk)), "ckpt_path:", str(junk), "cannot be read as a checkpoint")
    dictionary = tmp_path / "dict.ckpt"
    torch.save({"weights": torch.zeros(2)}, dictionary)
    assert_clean_error(train("--ckpt_path", str(dictionary)), "ckpt_path:", "not a Lightning checkpoint")


class Carried:
    """What a crafted checkpoint carries: unpickling it calls ``os.makedirs(path)``, any code could run."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        import os

        return os.makedirs, (self.path,)


def test_a_checkpoint_that_carries_code_is_refused_without_running_it(train, tmp_path):
    made = tmp_path / "made_by_the_checkpoint"
    crafted = tmp_path / "crafted.ckpt"
    article = train_in_process(tmp_path / "elsewhere", "--trainer.max_steps=2")
    checkpoint = torch.load(article.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["carried"] = Carried(made)  # a real checkpoint, and one thing more
    torch.save(checkpoint, crafted)
    line = assert_clean_error(train("--ckpt_path", str(crafted)), "ckpt_path:", str(crafted))
    assert line == (
        f"error: ckpt_path: {crafted} is refused: it carries code to run when it is read (os.makedirs); a"
        " checkpoint is read with torch.load(weights_only=True), tensors and plain values only, and nothing in it"
        " was run"
    )
    assert not made.exists()  # nothing it carried ran


def test_a_checkpoint_of_another_model_or_optimizer(train, tmp_path):
    mlp = train(
        f"--data.init_args.path={REPO / 'data' / 'noisy_sine.csv'}",
        "--trainer.max_steps=2",
        config=REPO / "configs" / "mlp.yaml",
        save_dir=tmp_path / "mlp",
    )
    assert mlp.exit_code == 0
    (checkpoint,) = (tmp_path / "mlp").glob("mlp/version_0/checkpoints/last.ckpt")
    run = train("--ckpt_path", str(checkpoint), save_dir=tmp_path / "article")
    line = assert_clean_error(run, "ckpt_path:", "is of another model", "missing model.slope, model.intercept")
    assert "unexpected model.layers.0.weight" in line and "and 2 more" in line
    article = train("--trainer.max_steps=2", save_dir=tmp_path / "first")
    (checkpoint,) = (tmp_path / "first").glob("article/version_0/checkpoints/last.ckpt")
    run = train("--ckpt_path", str(checkpoint), "--model.optimizer=torch.optim.Adam", save_dir=tmp_path / "adam")
    assert article.exit_code == 0
    assert_clean_error(run, "ckpt_path:", "trained with torch.optim.SGD", "optimizer is torch.optim.Adam")


@pytest.mark.parametrize(
    "flag, value, words",
    [
        # no prefix matching: an unknown key, with the one meant
        ("--model.learning_rat", "0.1", ["unknown key model.learning_rat on the command line", "model.learning_rate?"]),
        ("--seed_everything", "-1", ["seed_everything", "from 0 to 4294967295", "got -1"]),
        ("--seed_everything", "abc", ["seed_everything: expected true/false or an integer, got abc"]),
        ("--trainer.precision", "8", ["trainer.precision", "one of 64, 32, 16,", "got 8"]),
        ("--model.learning_rate", "fast", ["model.learning_rate", "a number or 'auto'", "got fast"]),
        # a union inside the data's class: named down to the argument, not the union's machinery
        ("--data.batch_size", "abc", ["data.init_args.batch_size: expected an integer or null, got abc"]),
        ("--model.optimizer.init_args.momentum", "0.9", ["model.optimizer.init_args.momentum: no optimizer is named"]),
    ],
)
def test_parser_messages_are_plain(train, flag, value, words):
    assert_clean_error(train(flag, value), *words)


@pytest.mark.parametrize(
    "flag, value, words",
    [
        # before: the table printed a row per batch, "Step -1" first and each step twice
        ("--trainer.accumulate_grad_batches", "2", ["trainer.accumulate_grad_batches is 2", "data.batch_size"]),
        # before: a ModuleNotFoundError traceback
        ("--trainer.precision", "transformer-engine", ["trainer: Requirement 'transformer_engine", "not met"]),
        # before: "training failed: When using an `IterableDataset`, ...", a failed run in its directory
        ("--trainer.limit_train_batches", "0.5", ["trainer.limit_train_batches is 0.5; full batch is one open-ended"]),
    ],
)
def test_trainer_settings_gd_torch_cannot_take_are_one_line(train, flag, value, words):
    assert_clean_error(train(flag, value), *words)


def test_a_typo_in_a_config_file_is_named_with_its_file_in_the_command_lines_words(train, tmp_path):
    """Before: "Group 'trainer' does not accept option 'max_step'", naming neither the file nor the key as
    the command line's "unrecognized arguments" did."""
    typo = tmp_path / "mine.yaml"
    typo.write_text("trainer:\n  max_step: 5\n")
    from_file = assert_clean_error(train("--config", str(typo)), f"unknown key trainer.max_step in {typo}")
    from_flag = assert_clean_error(train("--trainer.max_step", "5"), "unknown key trainer.max_step on the command line")
    assert from_file.endswith("; did you mean trainer.max_steps or trainer.max_time?")
    assert from_flag.endswith("; did you mean trainer.max_steps or trainer.max_time?")
