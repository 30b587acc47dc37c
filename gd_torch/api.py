"""Python entry points: ``load_run``, the trained model of a run, ready to predict."""

from pathlib import Path

import torch

from gd_torch.errors import ConfigError
from gd_torch.models import Predictor


def load_run(run_dir: str | Path, checkpoint: str = "last") -> Predictor:
    """The trained model of a run: an ``nn.Module`` in eval mode on the CPU that maps raw x (shape
    (N,) for one feature, (N, F) for several, columns in the order of ``feature_names``) to one
    prediction per point, in the target's units. When the run standardized its features, the
    training split's statistics are folded in; the model itself is ``.model``.

    It is built from the run's checkpoint, whose hyperparameters hold the model section of the run's
    ``config.yaml``. ``checkpoint`` is ``"last"`` (``checkpoints/last.ckpt``), ``"best"`` (the best one
    of a ``ModelCheckpoint`` that monitors a value, e.g. ``val/loss``) or the path of a checkpoint file.
    Raises :class:`ConfigError` when there is no such run or checkpoint.
    """
    from gd_torch.module import GradientDescent  # Lightning: imported when a run is loaded

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"run_dir: {run_dir} is not a run directory (it has no config.yaml)")
    path = checkpoint_path(run_dir, checkpoint)
    try:
        module = GradientDescent.load_from_checkpoint(path, map_location="cpu")
    except Exception as error:  # whatever torch.load or the model's rebuild says
        raise ConfigError(f"checkpoint: cannot load {path}: {' '.join(str(error).split())}") from None
    return module.predictor().eval()


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """The file ``checkpoint`` names in ``run_dir``: ``last``, ``best`` or a path."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if checkpoint not in ("last", "best"):
        path = Path(checkpoint)
        if not path.is_file():
            raise ConfigError(f"checkpoint: no such file: {path} (use 'last', 'best' or a checkpoint's path)")
        return path
    if not last.is_file():
        raise ConfigError(f"checkpoint: {run_dir} has no {last.relative_to(run_dir)}; did the run start training?")
    if checkpoint == "last":
        return last
    # The monitoring ModelCheckpoint's state, as the final checkpoint recorded it.
    states = torch.load(last, map_location="cpu", weights_only=False).get("callbacks", {})
    best = {key: state["best_model_path"] for key, state in states.items() if state.get("best_model_path")}
    if len(best) != 1:
        found = "none" if not best else f"{len(best)}: {', '.join(best)}"
        raise ConfigError(
            f"checkpoint: 'best' needs exactly one ModelCheckpoint with a monitor in the run's callbacks"
            f" (e.g. monitor: val/loss); {run_dir} has {found}"
        )
    (recorded,) = best.values()
    # The recorded path is as the run saw it (maybe relative to where it ran): look in this run directory.
    path = run_dir / "checkpoints" / Path(recorded).name
    if not path.is_file():
        raise ConfigError(f"checkpoint: the best checkpoint {Path(recorded).name} is not in {path.parent}")
    return path
