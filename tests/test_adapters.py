"""The library boundary: no private API of Lightning, TensorBoard, torch, MLflow or jsonargparse is used
outside gd_torch/adapters, and each adapter still does what the project relies on with the installed
versions (an upgrade that changes one of them fails here, by name, rather than somewhere downstream)."""

import inspect
import io
import re

import lightning.pytorch as pl
import pytest
import torch
from jsonargparse import ArgumentError, ArgumentParser
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.plugins.custom_scalar.layout_pb2 import Layout
from torch.utils.tensorboard import SummaryWriter

from gd_torch.adapters import jsonargparse as messages
from gd_torch.adapters import lightning, loggers, tensorboard

from conftest import REPO, read_events

PROJECT_FILES = sorted([*(REPO / "gd_torch").rglob("*.py"), *(REPO / "scripts").glob("*.py")])
ADAPTERS = REPO / "gd_torch" / "adapters"


def defined_private_names() -> set[str]:
    """Every ``_name`` the project defines itself (functions, methods, attributes it assigns)."""
    names = set()
    for path in PROJECT_FILES:
        text = path.read_text()
        names |= set(re.findall(r"def (_\w+)", text))
        for line in text.splitlines():
            assigned = re.split(r"(?<![=!<>])=(?!=)", line)[:-1]  # the left of each plain assignment
            names |= {name for left in assigned for name in re.findall(r"\b(_\w+)", left)}
    return names


def test_no_private_library_api_outside_the_adapters():
    ours = defined_private_names()
    found = []
    for path in PROJECT_FILES:
        if path.is_relative_to(ADAPTERS):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            where = f"{path.relative_to(REPO)}:{number}: {line.strip()}"
            # another object's private attribute: logger._version, writer._get_file_writer()
            found += [where for name in re.findall(r"\b(?!self\b|cls\b)\w+\.(_[a-zA-Z]\w*)", code) if name not in ours]
            # a private name imported from a library, or inherited from one (super()._save_checkpoint)
            found += [where for _ in re.findall(r"import .*\b_[a-zA-Z]\w*|super\(\)\._[a-zA-Z]\w*", code)]
            found += [where for name in re.findall(r"self\.(_[a-zA-Z]\w*)", code) if name not in ours]
    assert found == [], "private library API outside gd_torch/adapters:\n" + "\n".join(found)


def test_the_grep_sees_a_private_use():
    """The check above is not blind: the adapters themselves are what it would flag."""
    text = (ADAPTERS / "loggers.py").read_text() + (ADAPTERS / "tensorboard.py").read_text()
    assert re.search(r"\b(?!self\b)\w+\.(_[a-zA-Z]\w*)", text)


# TensorBoard


def test_one_event_holds_every_tag_of_a_step_and_the_layout_is_read_back(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    tensorboard.add_scalars_event(writer, [("train/loss", 405.0), ("params/b", 9.1)], step=0, wall_time=1.0)
    tensorboard.add_scalars_event(writer, [("train/loss", 328.05), ("params/b", 8.29)], step=1, wall_time=2.0)
    tensorboard.add_layout(writer, {"Gradient descent": {"loss": ["Multiline", ["train/loss"]]}})
    writer.close()
    events = read_events(tmp_path)
    assert [(e.step, e.value, e.wall_time) for e in events.Scalars("train/loss")] == [
        (0, 405.0, 1.0),
        (1, pytest.approx(328.05), 2.0),
    ]
    assert [e.value for e in events.Scalars("params/b")] == [pytest.approx(9.1), pytest.approx(8.29)]
    (config,) = events.Tensors("custom_scalars__config__")
    layout = Layout.FromString(config.tensor_proto.string_val[0])
    (category,) = layout.category
    assert category.title == "Gradient descent"
    assert [chart.multiline.tag for chart in category.chart] == [["train/loss"]]


# Lightning's loggers


@pytest.mark.parametrize("logger_class", [TensorBoardLogger, CSVLogger])
def test_a_loggers_version_is_read_predicted_and_pinned(tmp_path, logger_class):
    (tmp_path / "run" / "version_0").mkdir(parents=True)
    (tmp_path / "run" / "version_3").mkdir()
    logger = logger_class(save_dir=str(tmp_path), name="run")
    assert loggers.version_of(logger) is None
    assert loggers.next_version(logger) == 4
    loggers.pin_version(logger, 7)
    assert loggers.version_of(logger) == 7 and logger.version == 7
    assert logger.log_dir == str(tmp_path / "run" / "version_7")


def test_a_tensorboard_writer_is_closed_only_when_it_was_made(tmp_path):
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="run")
    loggers.close_writer(logger)
    assert not (tmp_path / "run").exists()  # no writer made, no event file
    logger.experiment.add_scalar("a", 1.0, 0)
    loggers.close_writer(logger)
    assert logger.experiment.all_writers is None  # SummaryWriter.close() drops its writers
    loggers.close_writer(CSVLogger(str(tmp_path)))  # other loggers: nothing to close


@pytest.mark.slow  # importing MLflow takes seconds
def test_an_mlflow_loggers_tracking_uri(tmp_path):
    pytest.importorskip("mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = MLFlowLogger(tracking_uri=uri)  # nothing is sent until it logs
    assert loggers.is_mlflow(logger) and loggers.tracking_uri(logger) == uri
    assert not loggers.is_mlflow(CSVLogger(str(tmp_path))) and loggers.tracking_uri(CSVLogger(str(tmp_path))) is None


# Lightning's insides


def test_modelcheckpoint_still_has_what_last_checkpoint_calls():
    for name, parameters in {
        "_should_skip_saving_checkpoint": ["self", "trainer"],
        "_save_last_checkpoint": ["self", "trainer", "monitor_candidates"],
        "_monitor_candidates": ["self", "trainer"],
        "_save_checkpoint": ["self", "trainer", "filepath"],
    }.items():
        assert list(inspect.signature(getattr(ModelCheckpoint, name)).parameters) == parameters, name
    checkpoint = lightning.LastCheckpoint()
    assert checkpoint.last_saved_step == 0  # Lightning's _last_global_step_saved, before any save
    assert checkpoint.save_last is True and checkpoint.save_top_k == 0


def test_a_bar_is_moved_to_a_step_and_redrawn_on_its_refresh_rate():
    bar = Tqdm(total=100, file=io.StringIO())
    lightning.set_progress(bar, 42)
    assert bar.n == 42
    bar.close()
    progress = TQDMProgressBar(refresh_rate=10)
    assert [n for n in range(1, 31) if lightning.redraw_due(progress, n, 25)] == [10, 20, 25, 30]


def test_batches_done_and_attachment_before_a_run():
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert lightning.batches_done_this_epoch(trainer) == 0
    module = pl.LightningModule()
    assert lightning.is_attached(module) is False
    module.trainer = trainer
    assert lightning.is_attached(module) is True


# jsonargparse


def parser_error(argument_type, value: str) -> str:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--rate", type=argument_type)
    with pytest.raises(ArgumentError) as error:
        parser.parse_args(["--rate", value])
    return messages.plain_parser_message(str(error.value))


@pytest.mark.parametrize(
    "argument_type, value, expected",
    [
        (float, "fast", "rate: expected a number, got fast"),
        (int, "1.5", "rate: expected an integer, got 1.5"),
        (float | None, "fast", "rate: expected a number or null, got fast"),
    ],
)
def test_jsonargparse_type_errors_become_plain(argument_type, value, expected):
    assert parser_error(argument_type, value) == expected


def test_jsonargparse_union_and_literal_errors_become_plain():
    from typing import Literal

    assert parser_error(float | Literal["auto"], "fast") == "rate: expected a number or 'auto', got fast"
    assert parser_error(Literal["mean", "sum"], "max") == "rate: expected 'mean' or 'sum', got max"
    assert parser_error(Literal[1, 2, 3] | None, "4") == "rate: expected one of 1, 2, 3 or null, got 4"


class Source:
    """A configurable class with optional arguments, as a DataModule is."""

    def __init__(self, rows: int | None = None, names: list[str] | None = None) -> None:
        self.rows, self.names = rows, names


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--data.rows", "abc", "data.init_args.rows: expected an integer or null, got abc"),
        ("--data.names", "[a, [b]]", "data.init_args.names: expected a list of strings or null, got ['a', ['b']]"),
    ],
)
def test_a_wrong_argument_of_a_class_in_a_union_is_named_to_the_argument(flag, value, expected):
    """Before: ``data: expected an integer, got abc - Expected a <class 'NoneType'> Given value type:
    <class 'jsonargparse._util.NestedArg'> ...``: the inner union's words, then the outer one's machinery."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--data", type=Source | None)
    with pytest.raises(ArgumentError) as error:
        parser.parse_args(["--data", f"{__name__}.Source", flag, value])
    assert messages.plain_parser_message(str(error.value)) == expected


@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            ["--optimizer.init_args.momentum", "0.9"],
            "optimizer.init_args.momentum: no optimizer is named to take it; give its class first"
            " (class_path: torch.optim.SGD in a config, or --model.optimizer torch.optim.SGD)",
        ),
        (
            ["--optimizer", "torch.optim.SGD", "--optimizer.init_args.momentum", "fast"],
            "optimizer.init_args.momentum: expected a number, got fast",
        ),
        (
            ["--optimizer", "torch.optim.SGD", "--optimizer.init_args.momentun", "0.9"],
            "optimizer.init_args.momentun: torch.optim.SGD takes no argument 'momentun'; did you mean momentum?",
        ),
    ],
)
def test_a_wrong_optimizer_argument_is_named_with_the_one_meant(flags, expected):
    """Before: ``model.optimizer: Type typing.Callable[...] expects a function or a callable class: Option
    'momentun' is not accepted. Got value: Namespace(class_path='torch.optim.SGD', ...)``."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--optimizer", type=OptimizerCallable | None)
    with pytest.raises(ArgumentError) as error:
        parser.parse_args(flags)
    assert messages.plain_parser_message(str(error.value)) == expected


class Unreadable(Source):
    def __init__(self, rows: int | None = None) -> None:
        raise ValueError("Couldn't deserialize thrift: Deserializing page header failed.")  # as pyarrow's


def test_a_library_error_in_a_class_inside_a_union_is_its_own_words_under_the_key():
    """Before: the whole union message, ``Does not validate against any of the Union subtypes Subtypes: [...]
    Errors: - Couldn't deserialize thrift ... Given value: Namespace(class_path=...)``, on one line."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--data", type=Source | None)
    config = parser.parse_args(["--data", f"{__name__}.Unreadable"])
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in 4.49
    with pytest.raises(ValueError) as error:
        instantiate(config)
    key_of, words = {Unreadable: "data"}.get, "Couldn't deserialize thrift: Deserializing page header failed."
    assert messages.explain(error.value, key_of) == f"data: {words}"
    # Where the error it wraps is not kept (raised from None on the way), the union's text is all there is.
    assert messages.explain(ValueError(str(error.value)), key_of) == words


def test_a_configured_optimizer_gives_its_class_and_settings():
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--optimizer", type=OptimizerCallable)
    config = parser.parse_args(['--optimizer={"class_path": "torch.optim.SGD", "init_args": {"momentum": 0.5}}'])
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in 4.49
    optimizer = instantiate(config).optimizer
    cls, settings = messages.optimizer_class_and_settings(optimizer)
    assert cls is torch.optim.SGD and settings["momentum"] == 0.5
