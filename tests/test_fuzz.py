"""Every shipped config, one key at a time set to what users mistype (negative, zero, huge, NaN,
text, an empty list, null, a mapping): each case trains (or diverges, said in its error line), or
ends with one error line and exit code 2; never a traceback for invalid input."""

import pytest
import yaml

from gd_torch.command import main

from conftest import REPO

pytestmark = pytest.mark.slow  # hundreds of runs of the command

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
MISTAKES = ["-1", "0", "1e30", ".nan", "text", "[]", "null", "{a: 1}"]


def keys(section: dict, prefix: str = "") -> list[str]:
    """The config's leaf keys, dotted (the lists of callbacks and loggers are left whole)."""
    found = []
    for key, value in section.items():
        if isinstance(value, dict):
            found += keys(value, f"{prefix}{key}.")
        else:
            found.append(f"{prefix}{key}")
    return [k for k in found if not k.startswith(("trainer.logger", "trainer.callbacks"))]


@pytest.mark.parametrize("config", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_mistyped_values_never_end_in_a_traceback(config, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the configs name their data files relative to the repository
    wrong, outcomes = [], []
    for key in keys(yaml.safe_load(config.read_text())):
        for value in MISTAKES:
            save_dir = tmp_path / f"{key}={value}".replace("/", "_")
            argv = ["--config", str(config), f"--{key}={value}", f"--trainer.logger.init_args.save_dir={save_dir}"]
            if key != "trainer.max_steps":
                argv.append("--trainer.max_steps=2")
            code = main(argv)
            err = capsys.readouterr().err
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            trained = code == 0
            diverged = code == 1 and errors and errors[-1].startswith("error: training diverged")
            refused = code == 2 and len(errors) == 1
            if "Traceback" in err or not (trained or diverged or refused):
                wrong.append(f"--{key}={value}: exit {code}, {err.strip().splitlines()[-1:]}")
            outcomes.append(code)
    assert not wrong, "\n".join(wrong)
    assert outcomes.count(0) and outcomes.count(2)  # some mistakes still train, others are refused
