"""A run's trained model rebuilt from its checkpoint, which may come from anyone: what the file says is
data, and only a class on an allow-list is built from it, with plain values for its arguments.

The checkpoint's hyperparameters hold the run's ``model:`` section (``class_path`` and ``init_args``).
Lightning's ``load_from_checkpoint`` hands them to jsonargparse, which imports and builds every
``class_path`` it meets, nested ones included (``device: {class_path: subprocess.Popen, ...}`` runs a
command), and has no setting that limits which: a checkpoint read with ``weights_only=True`` holds
only strings, and strings are enough. So the model is built here instead, by one direct call, once
its class and every value have been checked; nothing the file names is imported or called before.
"""

import pickle
import re
import sys
from collections.abc import Iterable
from importlib import import_module
from typing import Any

import torch
from torch import nn

from gd_torch.errors import ConfigError, one_line

# What any checkpoint may build: the project's models and torch's own layers (both imported already).
OWN_MODELS = ("gd_torch.models.Line", "gd_torch.models.LinearRegression", "gd_torch.models.MLP")
TORCH_LAYERS = "torch.nn."
PLAIN = (bool, int, float, str, type(None))
# The module's own arguments a prediction needs (the optimizer and compile only matter in training).
MODULE_ARGUMENTS = ("learning_rate", "reduction", "momentum", "nesterov", "weight_decay")
HOW_TO_ALLOW = (
    "a checkpoint is data, and builds only gd_torch.models and torch.nn modules with plain arguments;"
    " if you trust the run, name its class: load_run(run_dir, allow=[{name!r}]) or predict.py --allow {name},"
    " or hand the model over: load_run(run_dir, model=...)"
)

Allowed = Iterable["str | type[nn.Module]"]


def read_checkpoint(path: Any, key: str) -> Any:
    """What a checkpoint file holds, read as data: tensors and plain values only (``weights_only``), on the
    CPU. A file that carries code, or is none that torch can read, is a :class:`ConfigError` naming ``key``."""
    try:
        # Unpickling runs any code a file carries; a Lightning checkpoint holds tensors and plain values only.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        carried = re.search(r"GLOBAL (\S+)", str(error))  # it carries something to call: refused, nothing run
        if carried is None:  # junk, or a truncated file
            raise ConfigError(f"{key}: {path} cannot be read as a checkpoint: {one_line(str(error))}") from None
        raise ConfigError(
            f"{key}: {path} is refused: it carries code to run when it is read ({carried[1]}); a checkpoint is"
            " read with torch.load(weights_only=True), tensors and plain values only, and nothing in it was run"
        ) from None
    except Exception as error:  # a file the installed versions cannot read
        reason = one_line(str(error)) or type(error).__name__
        raise ConfigError(f"{key}: {path} cannot be read as a checkpoint: {reason}") from None


def saved_run(path: Any) -> dict:
    """A run's checkpoint for ``load_run``, read as data (:func:`read_checkpoint`)."""
    checkpoint = read_checkpoint(path, "checkpoint")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ConfigError(f"checkpoint: {path} is not a Lightning checkpoint (it has no state_dict)")
    return checkpoint


def model_of(checkpoint: dict, allow: Allowed = ()) -> nn.Module:
    """The untrained model the checkpoint's ``model`` section describes, built only when its class is
    allowed (the project's models, ``torch.nn``'s, or one ``allow`` names) and its arguments are plain
    values; else a :class:`ConfigError` saying what was refused and how to allow it."""
    hparams = checkpoint.get("hyper_parameters")
    section = hparams.get("model") if isinstance(hparams, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("class_path"), str):
        raise ConfigError("checkpoint: it names no model (hyper_parameters.model.class_path); hand it over: model=...")
    name = section["class_path"]
    extra = sorted(str(key) for key in section if key not in ("class_path", "init_args"))
    if extra:
        raise ConfigError(f"checkpoint: its model section has {', '.join(extra)}, not only class_path and init_args")
    arguments = section.get("init_args") or {}
    if not isinstance(arguments, dict):
        raise ConfigError(f"checkpoint: the init_args of {name} are a {type(arguments).__name__}, not a mapping")
    for key, value in arguments.items():
        if not is_plain(value):
            raise ConfigError(
                f"checkpoint: the argument {key} of {name} is {described(value)}, not a plain value (a number, a"
                f" string, true/false, null or a list of them): refused, nothing in it was built;"
                f" {HOW_TO_ALLOW.format(name=name)}"
            )
    cls = allowed_class(name, allow)
    try:
        return cls(**arguments)
    except Exception as error:  # the class's own check of its arguments
        called = f"{name}({described_arguments(arguments)})"
        raise ConfigError(f"checkpoint: {called} fails: {one_line(str(error))}") from None


def module_arguments(checkpoint: dict) -> dict[str, Any]:
    """The GradientDescent arguments the checkpoint saved that a prediction needs, when plain values (the
    constructor checks them; another optimizer is never built: a trained model needs none)."""
    hparams = checkpoint.get("hyper_parameters") or {}
    return {key: hparams[key] for key in MODULE_ARGUMENTS if key in hparams and isinstance(hparams[key], PLAIN)}


def allowed_class(name: str, allow: Allowed) -> type[nn.Module]:
    """The class ``name`` stands for, when allowed; nothing is imported that ``allow`` does not name."""
    for allowed in allow:
        if isinstance(allowed, type):
            if already_imported(name) is allowed:
                return allowed
        elif allowed == name:
            return imported(name)  # the caller named it: its module may be imported
    cls = already_imported(name)
    if cls is not None and (name in OWN_MODELS or is_torch_layer(name, cls)):
        return cls
    raise ConfigError(f"checkpoint: its model is {name}, which is not allowed; {HOW_TO_ALLOW.format(name=name)}")


def already_imported(name: str) -> Any:
    """The object ``module.Name`` stands for, looked up only in modules imported already (None otherwise)."""
    module, _, attribute = name.rpartition(".")
    return getattr(sys.modules[module], attribute, None) if module in sys.modules else None


def is_torch_layer(name: str, cls: Any) -> bool:
    return (
        name.startswith(TORCH_LAYERS)
        and isinstance(cls, type)
        and issubclass(cls, nn.Module)
        and cls.__module__.startswith(TORCH_LAYERS)
    )


def imported(name: str) -> type[nn.Module]:
    module, _, attribute = name.rpartition(".")
    try:
        cls = getattr(import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"allow: {name} cannot be imported: {one_line(str(error))}") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"allow: {name} is not an nn.Module class")
    return cls


def is_plain(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(is_plain(item) for item in value)
    return isinstance(value, PLAIN)


def described(value: Any) -> str:
    if isinstance(value, dict) and "class_path" in value:
        return f"a class to build ({value['class_path']})"
    return f"a {type(value).__name__}"


def described_arguments(arguments: dict) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in arguments.items())
