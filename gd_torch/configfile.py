"""The config as files: the ``--config`` files checked before the parser reads them (a missing file,
a YAML syntax error, said with the line), and the resolved config saved in the run directory."""

from pathlib import Path

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from gd_torch import signals
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
            # The event writer's thread starts before the logger holds the writer: a signal in between
            # would leave a thread the command cannot close writing into a directory it takes back.
            with signals.deferred():
                writer = trainer.logger.experiment
            writer.add_text("config", code_block, global_step=0)


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
