"""The command line: ``python scripts/train.py --config configs/article.yaml [--section.key VALUE ...]``.

LightningCLI builds the parser from the constructors' typed arguments, so every argument of the
Trainer, the LightningModule, the injected model and the DataModule is a config key and a dotted
flag. ``main`` returns the exit code: 0 trained, 1 training failed (or diverged), 2 the config or
the data is invalid (nothing trained, no run directory), 130 interrupted by Ctrl-C.
"""

import gc
import inspect
import re
import signal
import sys
import traceback
from pathlib import Path

import torch
import yaml
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from gd_torch.callbacks import RunSummary
from gd_torch.checkpointing import PeriodicCheckpoint
from gd_torch.checks import check_model_fits_data
from gd_torch.dashboard import Dashboard
from gd_torch.data import PointData
from gd_torch.errors import ConfigError
from gd_torch.helptext import ShortHelp
from gd_torch.module import GradientDescent
from gd_torch.quiet import held_back_until_valid, silence_inapplicable_warnings
from gd_torch.rundir import reserve_run_directory, why_not_writable
from gd_torch.stopping import Diverged, Divergence, GracefulInterrupt, stop_reason

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


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


class SaveConfig(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` in the run directory, as Lightning does, and shows
    it in TensorBoard's Text tab (tag ``config``)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if isinstance(trainer.logger, TensorBoardLogger):  # the first logger: see claim_run_directory
            # The file Lightning has just written (the logger's own log_dir: no DDP broadcast here).
            text = (Path(trainer.logger.log_dir) / self.config_filename).read_text()
            code_block = "\n".join("    " + line for line in text.splitlines())  # markdown: shown verbatim
            trainer.logger.experiment.add_text("config", code_block, global_step=0)


class GradientDescentCLI(LightningCLI):
    def __init__(self, args: list[str] | None) -> None:
        super().__init__(
            GradientDescent,
            PointData,  # the project's data classes, or a user's subclass of PointData
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
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume from this checkpoint, e.g. runs/article/version_0/checkpoints/last.ckpt",
        )

    def parse_arguments(self, parser, args) -> None:
        for path in config_files(sys.argv[1:] if args is None else args):
            check_yaml(path)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            raise ConfigError(plain_parser_message(str(error))) from None
        # Checked here: LightningCLI seeds right after parsing, and numpy would raise a traceback.
        seed = self.config.get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed <= 2**32 - 1:
            raise ConfigError(
                f"seed_everything must be an integer from 0 to {2**32 - 1} (numpy's range),"
                f" true (a random seed) or false (none), got {seed}"
            )

    def before_instantiate_classes(self) -> None:
        trainer = self.config.trainer
        if not (isinstance(trainer.max_steps, int) and trainer.max_steps >= 1):
            raise ConfigError(f"trainer.max_steps must be >= 1 (one step = one update), got {trainer.max_steps}")
        interval = trainer.val_check_interval
        if isinstance(interval, int | float) and not isinstance(interval, bool) and not interval > 0:
            raise ConfigError(f"trainer.val_check_interval must be > 0 (an int: every that many steps), got {interval}")
        if trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator is {trainer.accelerator!r} but no CUDA GPU is available here;"
                " use 'auto' (CUDA when available, else the CPU) or 'cpu'"
            )
        ckpt_path = self.config.ckpt_path
        if ckpt_path is not None and not Path(ckpt_path).is_file():
            raise ConfigError(f"ckpt_path: no checkpoint file at {ckpt_path}")

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as error:
            raise ConfigError(self.explain(error)) from None

    def instantiate_trainer(self, **kwargs):
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, TypeError, MisconfigurationException) as error:
            raise ConfigError(f"trainer: {one_line(str(error))}") from None

    def after_instantiate_classes(self) -> None:
        """Check what needs the data, keep the model's config for checkpoints, and claim the run
        directory last, once everything else is known to be valid."""
        self.check_data_and_model()
        if self.config.ckpt_path is not None:
            self.check_checkpoint(Path(self.config.ckpt_path))
        # load_from_checkpoint rebuilds the injected model and optimizer from their config, kept with
        # the module's hyperparameters (its own arguments leave them out: in Python they are objects).
        section = self.config_dump["model"]
        self.model.hparams.update(model=section["model"], optimizer=section.get("optimizer"))
        self.claim_run_directory()

    def check_data_and_model(self) -> None:
        """The points made on the training device, split and standardized, then one forward pass of the
        model on a few of them: a model that does not fit its data is an error before anything is written."""
        data = self.datamodule
        if not isinstance(data, PointData):
            return  # another DataModule sets itself up when Lightning says so
        data.trainer = self.trainer  # the device to make the points on; Lightning's own setup then reuses them
        try:
            data.setup("fit")
        except ValueError as error:
            raise ConfigError(f"{self.config_key_of(type(data))}.{one_line(str(error))}") from None
        if "val" not in data.splits:
            # Nothing to validate: Lightning's validation loop stays out of the run altogether.
            self.trainer.limit_val_batches = 0
        x, y = data.splits["train"]
        try:
            check_model_fits_data(self.model.model, x, y, data.features.names)
        except ValueError as error:
            raise ConfigError(f"model.model: {error}") from None

    def check_checkpoint(self, path: Path) -> None:
        """A checkpoint to resume from must be one Lightning wrote, of this model (the same parameter
        names and shapes, standardized or not alike) and this optimizer: said before anything is
        written, naming what does not fit."""
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # junk, a truncated file, or one the installed versions cannot read
            reason = one_line(str(error)) or type(error).__name__
            raise ConfigError(f"ckpt_path: {path} cannot be read as a checkpoint: {reason}") from None
        if not (
            isinstance(checkpoint, dict) and "state_dict" in checkpoint and "pytorch-lightning_version" in checkpoint
        ):
            raise ConfigError(f"ckpt_path: {path} is not a Lightning checkpoint (no state_dict and version in it)")
        expected = {f"model.{name}": tuple(t.shape) for name, t in self.model.model.state_dict().items()}
        features = getattr(self.datamodule, "features", None)
        if features is not None and features.mean is not None:
            expected |= {"x_mean": tuple(features.mean.shape), "x_std": tuple(features.std.shape)}
        found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
        problems = []
        for what, names in (("missing", [n for n in expected if n not in found]),
                            ("unexpected", [n for n in found if n not in expected])):  # fmt: skip
            if names:
                problems.append(
                    f"{what} {', '.join(names[:4])}" + (f" and {len(names) - 4} more" if len(names) > 4 else "")
                )
        shapes = [
            f"{n} is {found[n]} there, {expected[n]} here" for n in expected if n in found and found[n] != expected[n]
        ]
        problems += shapes[:3]
        standardization = {"x_mean", "x_std"}
        if problems and (standardization <= set(expected)) != (standardization <= set(found)) and len(problems) == 1:
            raise ConfigError(
                f"ckpt_path: {path} was trained {'with' if 'x_mean' in found else 'without'} standardized features;"
                " resume with the data's standardize as it was"
            )
        if problems:
            raise ConfigError(f"ckpt_path: {path} is of another model: {'; '.join(problems)}")
        theirs = (checkpoint.get("hyper_parameters", {}).get("optimizer") or {}).get("class_path", "torch.optim.SGD")
        ours = (self.config_dump["model"].get("optimizer") or {}).get("class_path", "torch.optim.SGD")
        if theirs != ours:
            raise ConfigError(f"ckpt_path: {path} was trained with {theirs}; this run's optimizer is {ours}")

    def claim_run_directory(self) -> None:
        """Reserve a new version directory for every logger that writes files (TensorBoard, CSV); loggers
        of the same ``save_dir/name`` share one. The TensorBoard logger goes first among the loggers:
        Lightning puts the run's files (config.yaml, checkpoints) in the first logger's directory."""
        loggers = list(self.trainer.loggers)
        keys = {
            id(lg): "trainer.logger" if len(loggers) == 1 else f"trainer.logger[{i}]" for i, lg in enumerate(loggers)
        }
        self.trainer.loggers = sorted(loggers, key=lambda lg: not isinstance(lg, TensorBoardLogger))  # stable
        if loggers and not any(isinstance(lg, TensorBoardLogger | CSVLogger) for lg in loggers):
            names = ", ".join(type(lg).__name__ for lg in loggers)
            raise ConfigError(
                f"trainer.logger: a run keeps its files (config.yaml, summary.json, checkpoints) in the directory of a"
                f" TensorBoardLogger or CSVLogger; add one beside {names}"
            )
        if not self.trainer.is_global_zero:
            return  # other processes of a DDP run write nothing; rank zero's directory is theirs too
        claimed: dict[str, int | str] = {}  # root directory -> the version reserved there
        for logger in self.trainer.loggers:
            if not isinstance(logger, TensorBoardLogger | CSVLogger):
                continue
            root = str(Path(logger.root_dir).absolute())
            if root in claimed and logger._version is None:
                logger._version = claimed[root]  # the same run directory as the logger before it
                continue
            claimed[root] = self.reserve(logger, keys[id(logger)])
        for logger in self.trainer.loggers:
            if isinstance(logger, CSVLogger):
                _ = logger.experiment  # its writer, made while the directory is still empty (else it warns)

    @staticmethod
    def reserve(logger: TensorBoardLogger | CSVLogger, key: str) -> int | str:
        problem = why_not_writable(logger.save_dir)
        if problem:
            raise ConfigError(f"{key}.init_args.save_dir: cannot write runs to {logger.save_dir}: {problem}")
        try:
            reserve_run_directory(logger)
        except FileExistsError:
            raise ConfigError(
                f"{key}.init_args.version: {logger.log_dir} already exists;"
                " earlier runs are never overwritten (leave version unset to take the next one)"
            ) from None
        except OSError as error:
            raise ConfigError(
                f"{key}.init_args.save_dir: cannot write runs to {logger.save_dir}: {error.strerror}: {error.filename}"
            ) from None
        return logger.version

    def explain(self, error: ValueError) -> str:
        """``model.learning_rate must be ...`` from a constructor's ``learning_rate must be ...``.

        jsonargparse wraps what a constructor raised; the innermost error has the user's words, and
        the ``__init__`` it was raised in tells which config section it belongs to.
        """
        while isinstance(wrapped := cause_of(error), ValueError):
            error = wrapped
        message = one_line(str(error))
        owner = raised_in_init_of(error)
        key = self.config_key_of(owner) if owner else None
        if key is None:
            return message
        first_word = re.match(r"\w+", message)
        if first_word and first_word[0] in init_parameters(owner):
            return f"{key}.{message}"
        return f"{key}: {message}"

    def config_key_of(self, cls: type) -> str | None:
        """Where ``cls`` is configured: ``model``, ``data.init_args``, ``trainer.callbacks[1].init_args``."""
        if cls is self.model_class:
            return "model"
        class_path = f"{cls.__module__}.{cls.__qualname__}"
        for key, value in self.config.items():
            if key.endswith("class_path") and value == class_path:
                return key.removesuffix("class_path") + "init_args"
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if getattr(item, "class_path", None) == class_path:
                        return f"{key}[{i}].init_args"
        return None


def init_parameters(cls: type) -> set[str]:
    """The constructor arguments of ``cls`` and of the classes its ``**options`` go on to."""
    return {name for klass in cls.__mro__ for name in inspect.signature(klass.__init__).parameters}


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


def plain_parser_message(text: str) -> str:
    """jsonargparse's message, less its machinery: the key path, the bad value, what was expected.

    ``Parser key "data": Does not validate against any of the Union subtypes ... - Problem with given
    class_path '...Points': Parser key "x": Expected a <class 'float'>. Got value: a`` becomes
    ``data.init_args.x: expected float, got a``.
    """
    if "Union subtypes" in text:
        key = re.match(r'Parser key "([^"]+)":\s*', text)
        errors = text.split("Errors:", 1)[-1].split("Given value type:", 1)[0]
        reasons = [r.strip() for r in re.split(r"\n\s*- ", errors)[1:] if "NoneType" not in r]
        given = re.search(r"Given value: (.*)$", text, re.DOTALL)
        simple = [re.fullmatch(r"Expected a (.*)", r) for r in reasons]
        if reasons and all(simple) and given:  # e.g. float | Literal['auto']: name every type allowed
            allowed = allowed_values([match[1] for match in simple])
            return (f"{key[1]}: " if key else "") + f"expected {allowed}, got {one_line(given[1])}"
        if reasons:
            text = (f'Parser key "{key[1]}": ' if key else "") + reasons[0]
    text = one_line(text)
    nested = r'Parser key "([^"]+)": Problem with given class_path \'[^\']+\': Parser key "([^"]+)"'
    while re.search(nested, text):
        text = re.sub(nested, r'Parser key "\1.init_args.\2"', text)
    text = re.sub(r'^Parser key "([^"]+)": ', r"\1: ", text)
    text = re.sub(r"Expected a <class '(\w+)'>\. Got value: (.*)$", r"expected \1, got \2", text)
    literal = r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)$"
    return re.sub(literal, r"expected one of \1, got \2", text)


PLAIN_TYPES = {"bool": "true/false", "int": "an integer", "float": "a number", "str": "a string"}


def allowed_values(expected: list[str]) -> str:
    """What a union of types allows, in words: ``a number or 'auto'``, ``an integer or true/false``,
    ``one of 64, 32, '16-mixed', ...`` when every alternative is a literal value."""
    literals = [re.fullmatch(r"typing\.Literal\[(.*)\]", e) for e in expected]
    if all(literals):
        return "one of " + ", ".join(v.strip() for match in literals for v in match[1].split(","))
    words = []
    for alternative, literal in zip(expected, literals, strict=True):
        plain = re.fullmatch(r"<class '(\w+)'>", alternative)
        if literal:
            words.append(" or ".join(v.strip() for v in literal[1].split(",")))
        else:
            words.append(PLAIN_TYPES.get(plain[1], plain[1]) if plain else alternative)
    return " or ".join(words)


def cause_of(error: BaseException) -> BaseException | None:
    """The exception ``error`` was raised from, as Python's traceback would show it."""
    if error.__cause__ is not None or error.__suppress_context__:
        return error.__cause__
    return error.__context__


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


def run() -> int:
    """The command's entry point (``scripts/train.py``, ``gd-train``): ``main()`` in a process of its own."""
    # Importing torch and Lightning leaves millions of long-lived objects, and every garbage
    # collection after that walks them all: ~0.6 s over a run of the article. None of them is
    # garbage, so they are moved out of the collector's sight. A longer-lived process that calls
    # main() itself, like the tests, keeps its collector as it is.
    gc.freeze()
    try:
        code = main()
    except KeyboardInterrupt:
        if not training_started:  # Ctrl-C while the config was read and checked: nothing to keep
            print("Interrupted before training started.", file=sys.stderr)
        code = EXIT_INTERRUPTED  # else a second Ctrl-C after the run's own ending: it has said all
    # The outcome is decided; a Ctrl-C while the interpreter shuts down must not turn it into a kill.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def main(argv: list[str] | None = None) -> int:
    """The command: parse and check ``argv`` (the command line when None), train, return the exit code."""
    try:
        cli = build(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    return train(cli)


def build(argv: list[str] | None) -> GradientDescentCLI:
    """The config parsed and every object built and checked, the run directory claimed; nothing
    trained. Raises :class:`ConfigError` for invalid input."""
    silence_inapplicable_warnings()
    with held_back_until_valid():
        return GradientDescentCLI(argv)


training_started = False  # for run(): whether a Ctrl-C came before or after the run began


def train(cli: GradientDescentCLI) -> int:
    """Fit what ``build`` made and return the exit code; errors are reported on stderr."""
    global training_started
    training_started = True
    trainer = cli.trainer
    try:
        trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    except Diverged as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except SystemExit:
        # Lightning turns a KeyboardInterrupt (a second Ctrl-C) into exit(1) after its cleanup.
        if trainer.interrupted:
            return EXIT_INTERRUPTED
        raise
    except Exception as error:
        traceback.print_exc()
        print(f"error: training failed: {one_line(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    reason = stop_reason(trainer)
    if reason in ("interrupted", "terminated"):
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else None
        if last:
            config = Path(trainer.log_dir) / "config.yaml"
            print(f"{reason.capitalize()}. Resume with: python scripts/train.py --config {config} --ckpt_path {last}")
        return EXIT_INTERRUPTED if reason == "interrupted" else EXIT_TERMINATED
    return EXIT_OK
