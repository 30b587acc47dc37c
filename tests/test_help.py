"""--help a newcomer can read: at most 400 lines, the project's models and data classes named, a
one-line description for every option of the project, and section headings that are whole sentences."""

import importlib.util
import inspect
import re

import pytest

from gd_torch import callbacks, dashboard, data, figures, models, module, stopping
from gd_torch.command import main

from conftest import REPO

PROJECT_CLASSES = [
    module.GradientDescent, dashboard.Dashboard, data.PointData, data.Points, data.TablePoints, data.SyntheticLine,
    models.Line, models.LinearRegression, models.MLP, callbacks.ArticleTable, stopping.Convergence,
    stopping.Divergence, figures.TrajectoryFigure, figures.FitFigure, figures.LossFigure,
]  # fmt: skip


def help_text(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 0
    return capsys.readouterr().out


def options(text: str, prefix: str) -> dict[str, str]:
    """--option -> its help text (descriptions and details joined), for options starting with prefix."""
    found, current = {}, None
    for line in text.splitlines():
        match = re.match(r"  (--\S+)(?:[^\n]*?)(?:\s{2,}(\S.*))?$", line)
        if line.startswith("  --"):
            current = match[1] if match[1].startswith(prefix) else None
            if current:
                found[current] = (match[2] or "") if match[2] and not line.endswith(match[1]) else ""
        elif current and line.startswith(" " * 24):
            found[current] += " " + line.strip()
        else:
            current = None
    return {name: text.strip() for name, text in found.items()}


def test_help_is_short_and_names_the_projects_classes(capsys):
    text = help_text(capsys, "--help")
    assert len(text.splitlines()) <= 400
    model = options(text, "--model.model")["--model.model"]
    for name in ("gd_torch.models.Line", "gd_torch.models.LinearRegression", "gd_torch.models.MLP", "torch.nn.Linear"):
        assert name in model
    assert "any nn.Module by class_path" in model and "torch.nn.ReLU" not in text
    data_help = options(text, "--data")["--data"]
    assert all(f"gd_torch.data.{name}" in data_help for name in ("Points", "TablePoints", "SyntheticLine"))


@pytest.mark.parametrize(
    "args, prefix",
    [
        (["--help"], "--model."),
        (["--help"], "--tensorboard."),
        (["--help"], "--ckpt_path"),
        *[(["--model.model.help", f"gd_torch.models.{n}"], "--model.model.") for n in ("Line", "MLP")],
        (["--model.model.help", "gd_torch.models.LinearRegression"], "--model.model."),
        *[(["--data.help", f"gd_torch.data.{name}"], "--data.") for name in ("Points", "TablePoints", "SyntheticLine")],
        *[(["--trainer.callbacks.help", path], "--trainer.callbacks.") for path in (
            "gd_torch.stopping.Convergence", "gd_torch.callbacks.ArticleTable", "gd_torch.figures.FitFigure",
            "gd_torch.figures.LossFigure", "gd_torch.figures.TrajectoryFigure")],
    ],
)  # fmt: skip
def test_every_option_of_the_project_says_what_it_is(capsys, args, prefix):
    found = options(help_text(capsys, *args), prefix)
    found = {name: text for name, text in found.items() if not name.endswith((".help", "CONFIG")) and name != "--model"}
    assert found, "no options found"
    for name, text in found.items():
        if name.endswith(".help") or text.startswith("Path to a configuration file"):
            continue
        assert text and not text.startswith("("), f"{name} has no description: {text!r}"


def test_headings_are_whole_sentences(capsys):
    for cls in PROJECT_CLASSES:
        first = inspect.getdoc(cls).splitlines()[0]
        assert first.endswith("."), f"{cls.__name__}'s first docstring line is cut: {first!r}"
    headings = [line for line in help_text(capsys, "--help").splitlines() if re.match(r"^[A-Z`].*:$", line)]
    assert "Gradient descent on the mean squared error of an injected model:" in headings
    assert "What TensorBoard shows of the run: every tag at every step, val/loss, layout and hparams:" in headings


def test_the_configuration_reference_is_written_from_the_parser_and_lists_every_key(capsys):
    """docs/reference/configuration.md is what scripts/config_reference.py writes from the parser now
    (regenerate it after changing a key), and it lists every key --help lists."""
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "scripts" / "config_reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    page = reference.page()
    assert reference.PAGE.read_text() == page, "python scripts/config_reference.py writes the page anew"
    listed = [key for key in options(help_text(capsys, "--help"), "--") if not key.endswith(".help")]
    missing = [key for key in listed if key not in ("--help", "--print_config") and f"`{key[2:]}`" not in page]
    assert len(listed) > 40 and missing == []
