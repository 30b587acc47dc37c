"""The pictures themselves, in matplotlib: pure functions of float64 CPU tensors, each a Figure of
800 x 500 pixels at 100 dpi. matplotlib is imported inside each, when a picture is drawn (a second of
import that a run without pictures never pays)."""

import torch

SPLIT_COLOURS = {"train": "C0", "val": "C1", "test": "C2"}


def draw_trajectory(
    names: list[str], path: torch.Tensor, losses: torch.Tensor, landscape, optimum: dict[str, float] | None = None
):
    """A matplotlib Figure (800 x 500 pixels at 100 dpi); the path is the line with gid "path"."""
    from matplotlib.figure import Figure  # only here: a second of import for a picture at the end

    axes, values = landscape
    descent = {"color": "C3", "label": "gradient descent", "gid": "path"}
    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    if len(names) == 1:
        ax.plot(axes[0].numpy(), values.numpy(), color="0.6", label=f"loss L({names[0]})")
        ax.plot(path[:, 0].numpy(), losses.numpy(), "o-", markersize=4, **descent)
        ax.set_xlabel(names[0])
        ax.set_ylabel("loss")
    else:
        levels = torch.quantile(values.flatten(), torch.linspace(0.01, 0.99, 15, dtype=values.dtype)).unique()
        contours = ax.contour(axes[0].numpy(), axes[1].numpy(), values.T.numpy(), levels=levels.numpy(), cmap="viridis")
        figure.colorbar(contours, ax=ax, label="loss")
        ax.plot(path[:, 0].numpy(), path[:, 1].numpy(), "o-", markersize=3, **descent)
        if optimum:
            ax.plot(optimum[names[0]], optimum[names[1]], "*", color="k", markersize=12, label="least squares")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
    ax.set_title(f"{len(path) - 1} steps of gradient descent")
    ax.legend()
    return figure


def draw_fit(shown: dict, curve, feature_names: list[str], target: str):
    """``shown``: split -> (raw x, y, prediction) as float64 CPU tensors; ``curve``: (x grid, prediction)
    for one feature and one target, else None (then every prediction against its target, all targets
    in one scatter)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    if curve is not None:
        for name, (x, y, _) in shown.items():
            ax.scatter(x.numpy(), y.numpy(), s=8, alpha=0.6, color=SPLIT_COLOURS.get(name), label=f"{name} ({len(y)})")
        ax.plot(curve[0].numpy(), curve[1].numpy(), color="C3", linewidth=2, label="trained model")
        ax.set_xlabel(feature_names[0])
        ax.set_ylabel(target)
        ax.set_title("The data and the trained model")
    else:
        for name, (_, y, prediction) in shown.items():
            ax.scatter(
                y.reshape(-1).numpy(),
                prediction.reshape(-1).numpy(),
                s=8,
                alpha=0.6,
                color=SPLIT_COLOURS.get(name),
                label=f"{name} ({len(y)})",
            )
        low = min(min(y.min().item(), p.min().item()) for _, y, p in shown.values())
        high = max(max(y.max().item(), p.max().item()) for _, y, p in shown.values())
        ax.plot([low, high], [low, high], color="0.4", linestyle="--", label="prediction = target")
        ax.set_xlabel(f"target ({target})")
        ax.set_ylabel("prediction")
        targets = f", {y.shape[1]} targets" if y.dim() == 2 else ""
        ax.set_title(f"Predictions against targets ({len(feature_names)} features{targets})")
    ax.legend()
    return figure


def draw_losses(steps: list[int], losses: torch.Tensor, val_steps: list[int], val: torch.Tensor | None):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = figure.add_subplot()
    ax.plot(steps, losses.numpy(), color="C0", label="train/loss")
    if val is not None:
        ax.plot(val_steps, val.numpy(), "o-", markersize=3, color="C1", label="val/loss")
    positive = torch.cat([losses, val if val is not None else losses])
    if (positive[torch.isfinite(positive)] > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss against steps")
    ax.legend()
    return figure
