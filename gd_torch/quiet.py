"""Silence, each by its exact message, framework output that does not apply to this project's runs.

Anything not listed here still shows: a warning that does apply must reach the user.
"""

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Lightning's rank-zero info lines go through whichever of these loggers was set up last.
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
_SEED_LOGGER = "lightning.fabric.utilities.seed"

# Beginnings of Lightning info lines that say nothing about these runs.
_INAPPLICABLE_INFO = (
    # An advertisement, not a diagnosis.
    "💡 Tip: For seamless cloud logging",
    # No TPU here; the line beside it still says whether a GPU is available and used.
    "TPU available: False",
    # Advice to trade float32 matmul precision for speed (TF32): runs here must match the CPU and
    # float64 references, and a line has no matmul. A model that wants TF32 sets it explicitly.
    "You are using a CUDA device",
    # The run's own summary says how it stopped ("Done: 30 steps (max_steps)"), on stdout.
    "`Trainer.fit` stopped:",
)

# (category, message regex) of warnings raised inside the frameworks, not by the user's setup.
_INAPPLICABLE_WARNINGS = (
    # Lightning's own batch flattening uses a torch API that newer torch deprecates.
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # A resumed run writes to a new version directory by design, so the checkpoint callback's
    # bookkeeping of the old directory is rightly not carried over.
    (UserWarning, r"The dirpath has changed from"),
    # GradientDescent validates whatever data has a val split; one without is a run without val/loss,
    # which the docs say (the same as a PointData with nothing held out, which says nothing).
    (UserWarning, r"You defined a `validation_step` but have no `val_dataloader`"),
)


class _DropInapplicable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_INAPPLICABLE_INFO)


def silence_inapplicable_warnings() -> None:
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropInapplicable) for f in logger.filters):  # main() may run many times
            logger.addFilter(_DropInapplicable())
    for category, message in _INAPPLICABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


@contextmanager
def held_back_until_valid() -> Iterator[None]:
    """Hold back Lightning's set-up notices ("Seed set to 0", "GPU available: ...") while the config
    is checked: if it is invalid, the user sees the error line alone; if not, the notices follow."""
    held: list[logging.LogRecord] = []

    class Hold(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            held.append(record)
            return False

    hold = Hold()
    loggers = [logging.getLogger(name) for name in (*_RANK_ZERO_LOGGERS, _SEED_LOGGER)]
    for logger in loggers:
        logger.addFilter(hold)
    try:
        yield
    except BaseException:
        held.clear()
        raise
    finally:
        for logger in loggers:
            logger.removeFilter(hold)
    for record in held:
        logging.getLogger(record.name).handle(record)


@contextmanager
def filters_as_found() -> Iterator[None]:
    """The process's warning filters and the filters of the loggers above as they were, once the block
    ends: ``gd_torch.fit`` silences what does not apply to its run, not a notebook's later work."""
    loggers = [logging.getLogger(name) for name in (*_RANK_ZERO_LOGGERS, _SEED_LOGGER)]
    saved = [list(logger.filters) for logger in loggers]
    try:
        with warnings.catch_warnings():  # restores warnings.filters on the way out
            yield
    finally:
        for logger, filters in zip(loggers, saved, strict=True):
            logger.filters[:] = filters
