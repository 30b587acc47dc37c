"""The error every entry point reports as one ``error:`` line, without a traceback."""


class ConfigError(Exception):
    """The config, the data, the model's fit to the data or a run directory is invalid: report it in
    one line (its message names the key or file, the value and what is allowed) and train nothing."""


def one_line(message: str) -> str:
    """A message on one line, whitespace collapsed (library messages span several)."""
    return " ".join(message.split())


def named(error: BaseException) -> str:
    """An exception as one line with its type: ``RuntimeError: ...``."""
    return one_line(f"{type(error).__name__}: {error}")
