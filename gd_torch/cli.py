"""The command line's parser and checks: ``--config FILE [--section.key VALUE ...]``.

LightningCLI builds the parser from the constructors' typed arguments, so every argument of the
Trainer, the LightningModule, the injected model and the DataModule is a config key and a dotted
flag. Everything is built and checked here, and the run directory claimed last; nothing is trained
(that is :mod:`gd_torch.command`'s).

The checks before a run are in :mod:`gd_torch.checks` and :mod:`gd_torch.resume`, run directories in
:mod:`gd_torch.rundir`, the config files in :mod:`gd_torch.configfile`, and jsonargparse's messages in
:mod:`gd_torch.adapters.jsonargparse`.
"""

import copy
import inspect
import shutil
import sys
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import yaml
from jsonargparse import ArgumentError, ArgumentParser, Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from gd_torch import signals
from gd_torch.adapters.jsonargparse import ShortHelp, explain, plain_parser_message
from gd_torch.adapters.loggers import close_writer
from gd_torch.checkpointing import PeriodicCheckpoint
from gd_torch.checks import batch_dtype_problem, check_batch_limit, check_model_fits_data, check_trainer_settings
from gd_torch.configfile import SaveConfig, check_yaml, config_files, unknown_key, unknown_key_line
from gd_torch.dashboard import Dashboard
from gd_torch.data import PointData
from gd_torch.errors import ConfigError, one_line
from gd_torch.initial_curvature import Curvature
from gd_torch.launch import torchrun_restart_warning
from gd_torch.module import GradientDescent
from gd_torch.resume import LAST, check_checkpoint, latest_run
from gd_torch.rundir import (
    claim_mlflow_run_directory,
    claim_run_directories,
    claim_unlogged_run_directory,
    file_loggers_first,
    mlflow_alone,
    reuse_run_directory,
    root_of,
)
from gd_torch.schema import Schema
from gd_torch.sizes import count, disagreement, first_batch, known_schema, schema_of_batch
from gd_torch.splits import converter, dataloader, prepare_once, set_up_once
from gd_torch.stopping import Divergence, GracefulInterrupt
from gd_torch.summary import RunSummary
from gd_torch.tables import read_as

FLOAT64 = ("64-true", "64", "double")  # Lightning's spellings of trainer.precision for float64


def trainer_defaults() -> dict:
    return {
        "accelerator": "auto",  # CUDA when available, else the CPU
        "devices": 1,
        "max_steps": 1000,  # Lightning's own default budget is 1000 epochs; a step is the unit here
        # Lightning's default of 50 would thin out anything a model logs with self.log.
        "log_every_n_steps": 1,
        # Validation (when the data holds out a val split) every val_check_interval steps, counted
        # across epochs: the full-batch epoch never ends, so Lightning's once-an-epoch would be never.
        "val_check_interval": 10,
        "check_val_every_n_epoch": None,
        "num_sanity_val_steps": 0,  # the model was already tried on the data before the run began
        "profiler": {"class_path": "gd_torch.profiling.NoProfiler"},
        "logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": "runs", "name": "gd_torch", "default_hp_metric": False},
        },
        # Always present, whatever the config's trainer.callbacks: the contracts of every run.
        "callbacks": [
            RunSummary(),
            Divergence(),
            GracefulInterrupt(),
        ],
    }


class GradientDescentCLI(LightningCLI):
    def __init__(self, args: list[str] | None) -> None:
        self.claimed: list[Path] = []  # the run directories this command created
        self.linked: dict[str, int] = {}  # the model's sizes taken from the data: features, outputs
        self.link_error: ConfigError | None = None  # raised once the classes are built (jsonargparse wraps it)
        try:
            self._build(args)
        except signals.Stopped:
            self.take_back_run_directories()
            raise

    def _build(self, args: list[str] | None) -> None:
        super().__init__(
            GradientDescent,
            # The project's data classes (PointData's), or any LightningDataModule of a user's own.
            pl.LightningDataModule,
            save_config_callback=SaveConfig,
            subclass_mode_data=True,  # data: {class_path: gd_torch.data.Points, init_args: ...}
            trainer_defaults=trainer_defaults(),
            auto_configure_optimizers=False,  # the module's SGD; no top-level optimizer section
            # No abbreviated keys: argparse would read --model.learning_rat as --model.learning_rate.
            parser_kwargs={"exit_on_error": False, "formatter_class": ShortHelp, "allow_abbrev": False},
            args=args,
            run=False,
        )

    def add_arguments_to_parser(self, parser) -> None:
        # Always on, and configurable in their own sections: tensorboard: {histogram_every: 10},
        # checkpoint: {every_n_steps: 500} (checkpoints/last.ckpt, refreshed as the run goes).
        parser.add_lightning_class_args(Dashboard, "tensorboard")
        parser.add_lightning_class_args(PeriodicCheckpoint, "checkpoint")
        # curvature: {enabled: auto, max_points: 4096}: the Hessian at the initial parameters, bounded.
        parser.add_lightning_class_args(Curvature, "curvature")
        # The model's sizes from the data's columns (one-hot categories and targets counted), where its
        # class has them (LinearRegression, MLP, a model of one's own with these arguments).
        for key in ("features", "outputs"):
            link = partial(self.size_from_data, key)
            parser.link_arguments("data", f"model.model.init_args.{key}", compute_fn=link, apply_on="instantiate")
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume from this checkpoint (e.g. runs/article/version_0/checkpoints/last.ckpt), or 'last':"
            " the latest run of this config, in its own directory (a new run when there is none)",
        )

    def parse_arguments(self, parser, args) -> None:
        files = config_files(sys.argv[1:] if args is None else args)
        for path in files:
            check_yaml(path)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            unknown = unknown_key(str(error), files)
            if unknown is not None:
                key, where = unknown
                raise ConfigError(unknown_key_line(parser, key, where)) from None
            raise ConfigError(plain_parser_message(str(error))) from None
        # Checked here: LightningCLI seeds right after parsing, and numpy would raise a traceback.
        seed = self.config.get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed <= 2**32 - 1:
            raise ConfigError(
                f"seed_everything must be an integer from 0 to {2**32 - 1} (numpy's range),"
                f" true (a random seed) or false (none), got {seed}"
            )

    def before_instantiate_classes(self) -> None:
        model = self.config.get("model.model")
        if isinstance(model, Namespace) and model.get("init_args") is None:
            # A model without arguments: the size links still record their values under its init_args
            # (Lightning's instantiator expects the key), and sizes_as_built drops them again.
            model.init_args = Namespace()
        check_trainer_settings(self.config.trainer)
        ckpt_path = self.config.ckpt_path
        if ckpt_path not in (None, LAST) and not Path(ckpt_path).is_file():
            raise ConfigError(f"ckpt_path: no checkpoint file at {ckpt_path}")

    def size_from_data(self, key: str, data: pl.LightningDataModule) -> int | None:
        """The data's count for the model's ``key`` (``features``, ``outputs``); the value given by hand
        when the data cannot tell yet. When the two disagree, or the data cannot be read, the error is
        kept for :meth:`instantiate_classes` to raise (jsonargparse would wrap it in a message of its own).

        A DataModule of one's own is set up only once the trainer exists (its ``setup`` may read it), so
        the model is built first with the sizes given, and again once the data has told its sizes
        (:meth:`size_model_from`), from the random state it was first built from."""
        given = self.config.get(f"model.model.init_args.{key}")
        if not isinstance(data, PointData):
            self.model_random_state = torch.get_rng_state()  # the model is built right after this
            return given
        try:
            schema = known_schema(data)
        except Exception as error:  # a PointData subclass of one's own: its own message, on one line
            self.link_error = self.link_error or self.not_set_up(data, error)
            return given
        if schema is None:
            return given
        found = count(schema, key)
        if given is not None and given != found:
            message = f"model.model.init_args.{disagreement(key, given, schema)}"
            self.link_error = self.link_error or ConfigError(message)
            return given
        self.linked[key] = found
        return found

    def size_model_from(self, schema: Schema) -> None:
        """An own DataModule's sizes for the model (``features``, ``outputs`` where its class has them and
        the config leaves them out): the model built again with them, as it would have been built first."""
        accepted = inspect.signature(type(self.model.model)).parameters
        sizes = {}
        for key in ("features", "outputs"):
            given, found = self.config.get(f"model.model.init_args.{key}"), count(schema, key)
            if key not in accepted:
                continue
            if given is not None and given != found:
                raise ConfigError(f"model.model.init_args.{disagreement(key, given, schema)}")
            self.linked[key] = found
            if given is None:
                sizes[key] = found
        if sizes:
            torch.set_rng_state(self.model_random_state)
            self.model.model = built_model(self.config_dump["model"]["model"], sizes)

    def instantiate_classes(self) -> None:
        try:
            # A run in float64 reads a table's numbers in float64: every digit of the file reaches the model.
            with read_as(np.float64 if str(self.config.trainer.precision) in FLOAT64 else np.float32):
                super().instantiate_classes()
        except ValueError as error:
            if self.link_error is not None:
                raise self.link_error from None
            raise ConfigError(explain(error, self.config_key_of)) from None
        if self.link_error is not None:
            raise self.link_error

    def instantiate_trainer(self, **kwargs):
        try:
            return super().instantiate_trainer(**kwargs)
        # ImportError: a strategy or precision whose package is not installed (transformer-engine, ...)
        except (ValueError, TypeError, MisconfigurationException, ImportError) as error:
            raise ConfigError(f"trainer: {one_line(str(error))}") from None

    def after_instantiate_classes(self) -> None:
        """Check what needs the data, keep the model's config for checkpoints, and claim the run
        directory last, once everything else is known to be valid."""
        self.check_data_and_model()
        warning = torchrun_restart_warning()
        if warning and self.trainer.is_global_zero:
            print(warning, file=sys.stderr, flush=True)
        section = self.config_dump["model"]
        self.ckpt_path = self.config.ckpt_path
        self.resumed_in: Path | None = None  # --ckpt_path last: the earlier run this one continues
        if self.ckpt_path == LAST:
            self.ckpt_path = self.latest_checkpoint()
        step = 0
        if self.ckpt_path is not None:
            optimizer = (section.get("optimizer") or {}).get("class_path")
            features = getattr(self.datamodule, "features", None)
            schema = getattr(self.datamodule, "schema", None)
            step, rate = check_checkpoint(Path(self.ckpt_path), self.model.model, features, optimizer, schema)
            wanted = self.model.learning_rate
            if rate is not None and wanted != "auto" and wanted != rate:  # applied by the module's on_load_checkpoint
                self.say(f"Resuming at learning_rate {wanted:g} from step {step} (the checkpoint trained at {rate:g})")
        # load_from_checkpoint rebuilds the injected model and optimizer from their config, kept with
        # the module's hyperparameters (its own arguments leave them out: in Python they are objects).
        model = copy.deepcopy(section["model"])
        self.sizes_as_built(model.get("init_args") or {})
        self.model.hparams.update(model=model, optimizer=section.get("optimizer"))
        self.claim_run_directory(step)

    def sizes_as_built(self, arguments: dict) -> None:
        """The model's arguments with the sizes it was built with: the data's where they were linked; the
        link's keys dropped where its class has no such argument (jsonargparse dumps them all the same)."""
        accepted = inspect.signature(type(self.model.model)).parameters
        for key in ("features", "outputs"):
            if key not in accepted:
                arguments.pop(key, None)
            elif key in self.linked:
                arguments[key] = self.linked[key]

    def latest_checkpoint(self) -> str | None:
        """``--ckpt_path last``: the checkpoint of the latest run of this config (the same model and data)
        that has steps left, to go on with in its own directory (a job restarted by torchrun or requeued
        by SLURM finds its run again); None when there is none, said in one line."""
        root = root_of(self.trainer.loggers)
        if root is None:
            raise ConfigError(
                "ckpt_path: last resumes the latest run in the directory of a TensorBoardLogger or CSVLogger,"
                " and this run has neither; give the checkpoint's path instead"
            )
        saved_as = yaml.safe_load(self.parser.dump(self.config, skip_none=False))  # as config.yaml has it
        self.resumed_in, line = latest_run(root, saved_as, self.trainer.max_steps)
        self.say(line)
        return str(self.resumed_in / "checkpoints" / "last.ckpt") if self.resumed_in is not None else None

    def say(self, line: str) -> None:
        if self.trainer.is_global_zero:
            print(line, flush=True)

    def claim_run_directory(self, step: int) -> None:
        loggers = list(self.trainer.loggers)
        keys = {
            id(lg): "trainer.logger" if len(loggers) == 1 else f"trainer.logger[{i}]" for i, lg in enumerate(loggers)
        }
        self.trainer.loggers = file_loggers_first(loggers)
        if not self.trainer.is_global_zero:
            return  # the other processes of a DDP run write nothing
        # A signal between making a directory and recording it in self.claimed would leave it behind
        # when the run is taken back: it waits until the claim is whole.
        with signals.deferred():
            if self.resumed_in is not None:
                reuse_run_directory(self.trainer.loggers, self.resumed_in, step)
            elif not self.trainer.loggers:
                claim_unlogged_run_directory(self.trainer, self.claimed)
            elif mlflow_alone(self.trainer.loggers):
                claim_mlflow_run_directory(self.trainer, self.claimed)
            else:
                claim_run_directories(self.trainer.loggers, keys, self.claimed)
            # The event writers too, while signals wait: a writer starts its thread before its logger
            # holds it, and one cut in between (made later by whichever callback logs first) would be
            # a thread that nothing closes, writing into a directory being taken back.
            for logger in self.trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    _ = logger.experiment

    def take_back_run_directories(self) -> None:
        """A signal came before training started: the run directories claimed for it go, with whatever
        the set-up wrote there (config.yaml, an empty event file). Only directories this command made.
        The event writers are closed first: their thread must not write into a directory being removed."""
        for logger in self.trainer.loggers if self.claimed else []:  # claims come after the trainer is built
            close_writer(logger)
        for run_dir in self.claimed:
            shutil.rmtree(run_dir, ignore_errors=True)
        self.claimed = []

    def check_data_and_model(self) -> None:
        """The points made on the training device, split and standardized, then one forward pass of the
        model on a few of them: a model that does not fit its data is an error before anything is written."""
        data = self.datamodule
        if not isinstance(data, PointData):
            self.check_own_data_module(data)
            return
        data.trainer = self.trainer  # the device to make the points on; Lightning's own setup then reuses them
        try:
            data.setup("fit")
        except ValueError as error:
            raise ConfigError(f"{self.config_key_of(type(data))}.{one_line(str(error))}") from None
        check_batch_limit(
            self.trainer.limit_train_batches,
            data.train_dataloader,
            "full batch is one open-ended epoch, every step on every point, so a fraction of its batches"
            " means nothing: leave it at 1.0, or give data.batch_size",
        )
        splits = data.measured_splits(self.trainer.strategy.root_device)
        if "val" not in splits:
            # Nothing to validate: Lightning's validation loop stays out of the run altogether.
            self.trainer.limit_val_batches = 0
        x, y = next(splits["train"].chunks())  # the first chunk: the check tries a few of its points
        try:
            check_model_fits_data(self.model.model, x, y, data.features.names)
        except ValueError as error:
            raise ConfigError(f"model.model: {error}") from None

    def check_own_data_module(self, data: pl.LightningDataModule) -> None:
        """A DataModule of the user's own, set up as Lightning sets one up (its trainer attached,
        ``prepare_data`` where Lightning calls it, ``setup("fit")``; Lightning's own calls then skipped),
        the model sized from its first training batch and tried on it."""
        data.trainer = self.trainer  # as Lightning attaches it: a setup may read the world size or the rank
        try:
            prepare_once(data, self.trainer)
            set_up_once(data, "fit")
            x, y = first_batch(data, self.trainer.strategy.root_device)
            held_out = {split: dataloader(data, split) for split in ("val", "test")}  # one loader each, or none
        except Exception as error:  # the user's own code: its message, on one line
            raise self.not_set_up(data, error) from None
        problem = batch_dtype_problem(
            type(data).__name__, x, y, self.trainer.precision, converted=converter(self.trainer) is not None
        )
        if problem:
            raise self.not_set_up(data, ValueError(problem))
        check_batch_limit(
            self.trainer.limit_train_batches,
            lambda: dataloader(data, "train"),
            f"the train_dataloader of {type(data).__name__} has no length (an IterableDataset) to take a"
            " fraction of: leave it at 1.0, or give a whole number of batches",
        )
        self.model.schema = schema_of_batch(x, y)
        self.size_model_from(self.model.schema)
        if held_out["val"] is None:
            self.trainer.limit_val_batches = 0  # nothing to validate: the loop stays out of the run
        try:
            check_model_fits_data(self.model.model, x, y, self.model.schema.feature_names)
        except ValueError as error:
            raise ConfigError(f"model.model: {error}") from None

    def not_set_up(self, data: pl.LightningDataModule, error: Exception) -> ConfigError:
        """The error line for a DataModule of one's own that raised while it was set up or read."""
        where = (self.config_key_of(type(data)) or "data").removesuffix(".init_args")  # the class, not an argument
        return ConfigError(f"{where}: {type(data).__name__} cannot be set up: {one_line(str(error))}")

    def config_key_of(self, cls: type) -> str | None:
        """Where ``cls`` is configured: ``model``, ``data.init_args``, ``trainer.callbacks[1].init_args``."""
        if cls is self.model_class:
            return "model"
        for key, value in self.config.items():
            if key.endswith("class_path") and names(value, cls):
                return key.removesuffix("class_path") + "init_args"
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if names(getattr(item, "class_path", None), cls):
                        return f"{key}[{i}].init_args"
        return None


def built_model(section: dict, sizes: dict[str, int]) -> torch.nn.Module:
    """The config's model section (``class_path``, ``init_args``) built, with ``sizes`` among its arguments,
    as LightningCLI builds it (nested classes included: it is the user's own config)."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(torch.nn.Module, "model", fail_untyped=False)
    arguments = {**(section.get("init_args") or {}), **sizes}
    config = parser.parse_object({"model": {"class_path": section["class_path"], "init_args": arguments}})
    return parser.instantiate_classes(config).model


def names(class_path: object, cls: type) -> bool:
    """Whether a config's ``class_path`` is ``cls``, by its own name or another (``CSVPoints`` is
    ``TablePoints``)."""
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    if class_path == f"{cls.__module__}.{cls.__qualname__}":
        return True
    module, _, name = class_path.rpartition(".")
    found = sys.modules.get(module)  # a class the config names is imported already
    return found is not None and getattr(found, name, None) is cls
