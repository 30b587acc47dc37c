"""The config as files: the ``--config`` files checked before the parser reads them (a missing file,
a YAML syntax error, said with the line), and the resolved config saved in the run directory."""

import difflib
import re
from pathlib import Path

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from gd_torch.adapters.jsonargparse import option_keys
from gd_torch.errors import ConfigError, one_line
from gd_torch.files import write_atomically
from gd_torch.rundir import run_directory


class SaveConfig(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` in the run directory, as Lightning does but written
    whole (a temporary file renamed into place, like every run file), and shows it in TensorBoard's
    Text tab (tag ``config``). A run resumed in its own directory writes the config it resumed with."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        run_dir = run_directory(trainer)  # every process: found here once, at a point all of them pass
        self.already_saved = True
        if not trainer.is_global_zero:
            return
        text = self.parser.dump(self.config, skip_none=False)
        path = run_dir / self.config_filename
        resumed_here = path.exists()  # --ckpt_path last: TensorBoard has the text from the first start
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text)
        if isinstance(trainer.logger, TensorBoardLogger) and not resumed_here:  # the first logger: see rundir
            code_block = "\n".join("    " + line for line in text.splitlines())  # markdown: shown verbatim
            # The writer was made when the run directory was claimed (with signals held: gd_torch.cli).
            trainer.logger.experiment.add_text("config", code_block, global_step=0)


def config_files(argv: list[str]) -> list[str]:
    """The files given with ``--config FILE``, ``--config=FILE`` or ``-c FILE``."""
    files = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif arg.startswith("--config="):
            files.append(arg.removeprefix("--config="))
    return files


def check_yaml(path: str) -> None:
    """A missing file or a YAML syntax error, said with the file and the line."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"--config: cannot read {path}: {error.strerror}") from None
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else path
        problem = getattr(error, "problem", None) or one_line(str(error))
        raise ConfigError(f"--config: invalid YAML in {where}: {problem}") from None


def unknown_key(message: str, files: list[str]) -> tuple[str, str] | None:
    """``(key, where)`` when the parser refused a key it does not know: ``where`` is the config file
    that holds it (the parser names the section alone) or "on the command line"; None for any other
    error."""
    grouped = re.fullmatch(r"Group '([^']+)' does not accept option '([^']+)'\.?", message.strip())
    if grouped:
        key = f"{grouped[1]}.{grouped[2]}"
        holder = next((path for path in reversed(files) if _holds(path, key.split("."))), None)
        return key, f"in {holder}" if holder else "in a config file"
    flag = re.match(r"unrecognized arguments: --([\w.\-]+)", message.strip())
    if flag:
        return flag[1], "on the command line"
    return None


def _holds(path: str, keys: list[str]) -> bool:
    try:
        node = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def unknown_key_line(parser, key: str, where: str) -> str:
    """One line for a key the parser does not know, in the same words from a file or the command line,
    with the nearest keys it does know."""
    section = key.rsplit(".", 1)[0] if "." in key else ""
    known = [option for option in option_keys(parser) if option.startswith(section)]
    near = difflib.get_close_matches(key, known, n=2, cutoff=0.75)
    hint = f"; did you mean {' or '.join(near)}?" if near else "; python scripts/train.py --help lists the keys"
    return f"unknown key {key} {where}{hint}"
