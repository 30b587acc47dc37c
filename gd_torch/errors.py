"""The error every entry point reports as one ``error:`` line, without a traceback."""


class ConfigError(Exception):
    """The config, the data, the model's fit to the data or a run directory is invalid: report it in
    one line (its message names the key or file, the value and what is allowed) and train nothing."""
