"""Silence, each by its exact message, framework output that does not apply to this project's runs.

Anything not listed here still shows: a warning that does apply must reach the user.
"""

import logging
import warnings

# (logger, message prefix) of Lightning's info lines that say nothing about these runs.
_INAPPLICABLE_INFO = (
    # An advertisement, not a diagnosis.
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip: For seamless cloud logging"),
    # No TPU here; the line beside it still says whether a GPU is available and used.
    ("lightning.pytorch.utilities.rank_zero", "TPU available: False"),
    # Advice to trade float32 matmul precision for speed (TF32): runs here must match the CPU and
    # float64 references, and a line has no matmul. A model that wants TF32 sets it explicitly.
    ("lightning.fabric.utilities.rank_zero", "You are using a CUDA device"),
)

# (category, message regex) of warnings raised inside the frameworks, not by the user's setup.
_INAPPLICABLE_WARNINGS = (
    # Lightning's own batch flattening uses a torch API that newer torch deprecates.
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: list[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def silence_inapplicable_warnings() -> None:
    loggers: dict[str, list[str]] = {}
    for name, prefix in _INAPPLICABLE_INFO:
        loggers.setdefault(name, []).append(prefix)
    for name, prefixes in loggers.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in logger.filters):  # main() may run many times
            logger.addFilter(_DropPrefixes(prefixes))
    for category, message in _INAPPLICABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
