"""gd_torch: gradient descent on PyTorch, Lightning and TensorBoard.

``load_run`` and ``ConfigError`` are imported on first use, so that ``import gd_torch.models`` stays light.
"""

__all__ = ["ConfigError", "load_run"]


def __getattr__(name: str):
    if name == "load_run":
        from gd_torch.api import load_run

        return load_run
    if name == "ConfigError":
        from gd_torch.errors import ConfigError

        return ConfigError
    raise AttributeError(f"module 'gd_torch' has no attribute {name!r}")
