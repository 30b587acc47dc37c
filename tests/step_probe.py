"""What the curvature tests compare against: the model as the run starts (after set-up, before the
first update), saved by rank zero in the run directory. Used as ``--trainer.callbacks+=step_probe.Start``.

And, run by torchrun, several runs of the command in one group of processes (``python -m
torch.distributed.run ... tests/step_probe.py RUNS.json``: a JSON list of argv lists), one after the other."""

import copy
import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch


class Start(pl.Callback):
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            torch.save(copy.deepcopy(pl_module.model).cpu(), Path(trainer.logger.log_dir) / "start.pt")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))  # this module, for the callback's class path
    from gd_torch import command

    # One process group for every run: Lightning joins a group already made, and a gloo group cannot be
    # made again in the same processes once closed. The last run's end closes it.
    close, command.end_process_group = command.end_process_group, lambda: None
    runs = json.loads(Path(sys.argv[1]).read_text())
    del sys.argv[1:]  # LightningCLI warns when argv holds more than the args it is given
    codes = [command.main(argv) for argv in runs]
    close()
    sys.exit(max(codes))
