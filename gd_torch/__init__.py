"""gd_torch: gradient descent on PyTorch, Lightning and TensorBoard.

``fit``, ``load_run`` and ``ConfigError`` are imported on first use, so that ``import gd_torch.models``
stays light.
"""

__all__ = ["ConfigError", "fit", "load_run"]


def __getattr__(name: str):
    if name in ("fit", "load_run"):
        from gd_torch import api

        return getattr(api, name)
    if name == "ConfigError":
        from gd_torch.errors import ConfigError

        return ConfigError
    raise AttributeError(f"module 'gd_torch' has no attribute {name!r}")
