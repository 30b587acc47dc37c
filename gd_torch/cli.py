"""The command line: ``python scripts/train.py --config configs/article.yaml [--section.key VALUE ...]``.

LightningCLI builds the parser from the constructors' typed arguments, so every argument of the
Trainer, the LightningModule, the injected model and the DataModule is a config key and a dotted
flag. ``main`` returns the exit code: 0 trained, 2 the config or the data is invalid (nothing
trained, no run directory), 1 training failed.
"""

import inspect
import re
import sys

from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from gd_torch.callbacks import RunSummary, TensorBoardScalars
from gd_torch.module import GradientDescent
from gd_torch.quiet import silence_inapplicable_warnings

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class ConfigError(Exception):
    """The config or the data is invalid: report it in one line, train nothing."""


def trainer_defaults() -> dict:
    return {
        "accelerator": "auto",  # CUDA when available, else the CPU
        "devices": 1,
        # Lightning's default of 50 would thin out anything a model logs with self.log.
        "log_every_n_steps": 1,
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs", "name": "gd_torch", "default_hp_metric": False},
        },
        # Always present, whatever the config's trainer.callbacks: the contracts of every run.
        "callbacks": [
            TensorBoardScalars(),
            RunSummary(),
            # checkpoints/last.ckpt at the end; no per-epoch saves (an epoch is one step at full batch).
            ModelCheckpoint(save_last=True, save_top_k=0, every_n_epochs=0),
        ],
    }


class GradientDescentCLI(LightningCLI):
    def __init__(self, args: list[str] | None) -> None:
        super().__init__(
            GradientDescent,
            LightningDataModule,
            subclass_mode_data=True,  # data: {class_path: gd_torch.data.Points, init_args: ...}
            trainer_defaults=trainer_defaults(),
            auto_configure_optimizers=False,  # the module's SGD; no top-level optimizer section
            parser_kwargs={"exit_on_error": False},
            args=args,
            run=False,
        )

    def parse_arguments(self, parser, args) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            raise ConfigError(one_line(str(error))) from None

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as error:
            raise ConfigError(self.explain(error)) from None

    def instantiate_trainer(self, **kwargs):
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, MisconfigurationException) as error:
            raise ConfigError(f"trainer: {one_line(str(error))}") from None

    def explain(self, error: ValueError) -> str:
        """``model.learning_rate must be ...`` from a constructor's ``learning_rate must be ...``.

        jsonargparse wraps what a constructor raised; the innermost error has the user's words, and
        the ``__init__`` it was raised in tells which config section it belongs to.
        """
        while isinstance(error.__cause__ or error.__context__, ValueError):
            error = error.__cause__ or error.__context__
        message = one_line(str(error))
        owner = raised_in_init_of(error)
        key = self.config_key_of(owner) if owner else None
        if key is None:
            return message
        first_word = re.match(r"\w+", message)
        if first_word and first_word[0] in inspect.signature(owner).parameters:
            return f"{key}.{message}"
        return f"{key}: {message}"

    def config_key_of(self, cls: type) -> str | None:
        """Where ``cls`` is configured: ``model``, ``data.init_args``, ``model.model.init_args``..."""
        if cls is self.model_class:
            return "model"
        class_path = f"{cls.__module__}.{cls.__qualname__}"
        for key, value in self.config.items():
            if key.endswith("class_path") and value == class_path:
                return key.removesuffix("class_path") + "init_args"
        return None


def raised_in_init_of(error: BaseException) -> type | None:
    """The class whose ``__init__`` raised ``error`` (the innermost one), if any."""
    owner, tb = None, error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "__init__" and "self" in frame.f_locals:
            owner = type(frame.f_locals["self"])
        tb = tb.tb_next
    return owner


def one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> int:
    silence_inapplicable_warnings()
    try:
        cli = GradientDescentCLI(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return EXIT_OK
