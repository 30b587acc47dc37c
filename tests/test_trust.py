"""What a user is handed runs no code and touches no file: a run directory's checkpoint builds only
allowed classes from plain values (load_run, predict.py), and resuming removes nothing outside the
run's own checkpoints/."""

import json
import sys

import pytest
import torch

from gd_torch import ConfigError, load_run
from gd_torch.predict import main as predict

LINE = {"class_path": "gd_torch.models.Line", "init_args": {"slope": 2.0, "intercept": 10.0, "learn_slope": False}}


@pytest.fixture
def article_run(train, tmp_path):
    run = train("--trainer.max_steps=5")
    assert run.exit_code == 0, run.stderr
    return run.run_dir


def with_model(run_dir, model: dict) -> None:
    """The run's checkpoint with its saved model section replaced, as someone else may hand it over."""
    path = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["model"] = model
    torch.save(checkpoint, path)


def popen(marker) -> dict:
    return {"class_path": "subprocess.Popen", "init_args": {"args": f"touch {marker}", "shell": True}}


def payloads(marker) -> dict[str, dict]:
    """Models a checkpoint's hyperparameters can name with strings alone; each would run a command or
    import someone's module if built as jsonargparse builds a config."""
    return {
        # The issue's: a torch layer whose argument is a class to build.
        "nested class_path": {
            "class_path": "torch.nn.Linear",
            "init_args": {"in_features": 1, "out_features": 1, "device": popen(marker)},
        },
        "top-level class": popen(marker),
        # A class path as a bare string, which jsonargparse reads as {class_path: ...} for a class-typed argument.
        "class as a string": {
            "class_path": "torch.nn.Linear",
            "init_args": {"in_features": 1, "out_features": 1, "device": "subprocess.Popen"},
        },
        # Hidden inside a list of an allowed model's argument.
        "inside a list": {"class_path": "gd_torch.models.MLP", "init_args": {"hidden": [4, popen(marker)]}},
        # A module of someone's, on the path, that does something when imported.
        "module of one's own": {"class_path": "side_effect_model.Parabola", "init_args": {}},
    }


@pytest.fixture
def importable(tmp_path, monkeypatch):
    """A model module on sys.path whose import leaves a file behind."""
    (tmp_path / "side_effect_model.py").write_text(
        "import pathlib\n"
        "import torch\n"
        "from torch import nn\n"
        f"pathlib.Path({str(tmp_path / 'imported')!r}).touch()\n"
        "class Parabola(nn.Module):\n"
        "    def __init__(self, a: float = 0.0, c: float = 0.0):\n"
        "        super().__init__()\n"
        "        self.a, self.c = nn.Parameter(torch.tensor(a)), nn.Parameter(torch.tensor(c))\n"
        "    def forward(self, x):\n"
        "        return self.a * x**2 + self.c\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "imported"
    sys.modules.pop("side_effect_model", None)


@pytest.mark.parametrize("payload", list(payloads("m")))
def test_a_checkpoint_from_anyone_builds_nothing_it_names(article_run, tmp_path, importable, payload, capsys):
    marker = tmp_path / "ran"
    with_model(article_run, payloads(marker)[payload])
    with pytest.raises(ConfigError) as refused:
        load_run(article_run)
    message = str(refused.value)
    assert message.startswith("checkpoint: ") and "\n" not in message
    if payload == "class as a string":  # passed as the string it is: the layer itself refuses it
        assert "fails: Invalid device string: 'subprocess.Popen'" in message
    else:
        assert "allow=" in message and "--allow" in message  # how to allow it, when it is trusted
    rows = tmp_path / "rows.csv"
    rows.write_text("x\n1\n")
    assert predict(["--run", str(article_run), "--input", str(rows), "--output", str(tmp_path / "out.csv")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --checkpoint: ")
    assert not marker.exists() and not importable.exists()  # nothing ran, nothing was imported
    assert "side_effect_model" not in sys.modules
    assert not (tmp_path / "out.csv").exists()


def test_the_refusal_says_what_was_refused(article_run, tmp_path):
    with_model(article_run, payloads(tmp_path / "ran")["nested class_path"])
    with pytest.raises(ConfigError, match=r"^checkpoint: the argument device of torch.nn.Linear is a class to build"
                       r" \(subprocess.Popen\), not a plain value"):  # fmt: skip
        load_run(article_run)
    with_model(article_run, payloads(tmp_path / "ran")["top-level class"])
    with pytest.raises(ConfigError, match=r"^checkpoint: its model is subprocess.Popen, which is not allowed; a"
                       r" checkpoint is data"):  # fmt: skip
        load_run(article_run)


def test_a_class_of_ones_own_loads_when_the_caller_names_it_or_hands_the_model_over(article_run, importable, tmp_path):
    with_model(article_run, {"class_path": "side_effect_model.Parabola", "init_args": {"a": 0.5}})
    path = article_run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"] = {"model.a": torch.tensor(0.5), "model.c": torch.tensor(3.0)}
    torch.save(checkpoint, path)
    model = load_run(article_run, allow=["side_effect_model.Parabola"])
    assert importable.exists()  # imported because it was named
    assert model(torch.tensor([2.0])).item() == 0.5 * 4 + 3.0
    from side_effect_model import Parabola

    assert load_run(article_run, allow=[Parabola])(torch.tensor([1.0])).item() == 3.5
    handed = load_run(article_run, model=Parabola())
    assert handed(torch.tensor([-2.0])).item() == 5.0 and handed.model.c.item() == 3.0
    # The command: --allow names it.
    rows, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    rows.write_text("x\n2\n")
    argv = ["--run", str(article_run), "--input", str(rows), "--output", str(out)]
    assert predict([*argv, "--allow", "side_effect_model.Parabola"]) == 0
    assert out.read_text().splitlines() == ["x,prediction", "2,5"]


def test_the_projects_models_and_torch_layers_load_as_before(article_run):
    model = load_run(article_run)
    assert model.model.intercept.item() == pytest.approx(1 + 9 * 0.9**5, rel=1e-6)
    with_model(article_run, LINE)  # the checkpoint's own section, as written
    assert load_run(article_run)(torch.tensor([0.0])).item() == pytest.approx(1 + 9 * 0.9**5, rel=1e-6)


# Lightning's notice for a ModelCheckpoint of one's own resumed in its own directory: expected here.
@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_resuming_a_crafted_checkpoint_removes_no_file_outside_its_checkpoints(train, tmp_path):
    """Before: Lightning restored the saved paths as they were and removed the previous last.ckpt and
    best file as it saved, comparing paths without resolving '..': the victims were gone."""
    extra = tmp_path / "keep_best.yaml"
    extra.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {every_n_train_steps: 1, save_top_k: 1}\n"
    )
    first = train("--config", str(extra), "--trainer.max_steps=5")
    assert first.exit_code == 0, first.stderr
    run_dir = first.run_dir
    victims = [tmp_path / "victim", tmp_path / "outside" / "victim2"]
    victims[1].parent.mkdir()
    (tmp_path / "outside" / "link").symlink_to(victims[1])
    for victim in victims:
        victim.write_text("someone's file")
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "inside-link.ckpt").symlink_to(victims[1])  # in checkpoints/, a link to a file outside
    escape = f"{checkpoints}/../../../victim"
    path = checkpoints / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    for key, state in checkpoint["callbacks"].items():
        if key.startswith("PeriodicCheckpoint"):
            state["last_model_path"] = escape
        elif key.startswith("ModelCheckpoint"):
            state["best_model_path"] = str(checkpoints / "inside-link.ckpt")
            state["best_k_models"] = {str(checkpoints / "inside-link.ckpt"): torch.tensor(0.0)}
            state["kth_best_model_path"] = str(checkpoints / "inside-link.ckpt")
            state["last_model_path"] = f"{checkpoints}/../../../outside/link"
    torch.save(checkpoint, path)
    resumed = train("--config", str(extra), "--trainer.max_steps=8", "--ckpt_path=last")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.made == [] and json.loads((run_dir / "summary.json").read_text())["steps"] == 8
    for victim in victims:
        assert victim.read_text() == "someone's file"
    (line,) = [line for line in resumed.stdout.splitlines() if line.startswith("Resuming: dropped")]
    assert line.startswith("Resuming: dropped 3 saved checkpoint paths outside the run's checkpoints/ (")
    assert escape in line
    assert (checkpoints / "last.ckpt").is_file()


def test_resuming_into_a_new_run_directory_drops_nothing_lightning_would_keep(train, tmp_path):
    """--ckpt_path FILE starts a new run directory: Lightning takes back none of the old directory's
    paths but the best one. Before: its last.ckpt was said to be dropped, outside the new checkpoints/."""
    first = train("--trainer.max_steps=5")
    assert first.exit_code == 0, first.stderr
    resumed = train(f"--ckpt_path={first.run_dir / 'checkpoints' / 'last.ckpt'}", "--trainer.max_steps=8")
    assert resumed.exit_code == 0, resumed.stderr
    assert "dropped" not in resumed.stdout
    assert json.loads((resumed.run_dir / "summary.json").read_text())["steps"] == 8
    assert (first.run_dir / "checkpoints" / "last.ckpt").is_file()
