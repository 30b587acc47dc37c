"""The docs' pictures of the edge of stability: full-batch gradient descent (plain SGD) at two
learning rates, with the sharpness measured as it trains.

    python scripts/edge_of_stability.py                # edge_of_stability.png here: configs/mlp.yaml's MLP
    python scripts/edge_of_stability.py digits         # edge_of_stability_digits.png: configs/digits.yaml
    python scripts/edge_of_stability.py --output docs/edge_of_stability.png    # the docs' own picture

The sharpness (the loss Hessian's largest eigenvalue) climbs as the network trains until it reaches
2 / lr, the largest value at which descent is stable at that rate, and then stays there while the
loss keeps going down (Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the
Edge of Stability", ICLR 2021).
"""

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gd_torch.command import main

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Setup:
    title: str
    flags: list[str]
    learning_rates: tuple[float, float]
    steps: int
    every: int
    output: str


SETUPS = {
    "mlp": Setup(
        "Full-batch gradient descent on an MLP: the sharpness rises until it meets 2 / lr",
        ["--config", str(REPO / "configs" / "mlp.yaml"), f"--data.init_args.path={REPO / 'data' / 'noisy_sine.csv'}",
         "--data.init_args.val_fraction=0", "--model.optimizer=null"],  # plain SGD: the bound 2 / lr holds for it
        (0.05, 0.1), 4000, 20, "edge_of_stability.png",
    ),
    "digits": Setup(
        "Full-batch gradient descent on the handwritten digits (MSE on one-hot classes): sharpness to 2 / lr",
        ["--config", str(REPO / "configs" / "digits.yaml"), f"--data.init_args.path={REPO / 'data' / 'digits.csv'}"],
        (0.5, 1.0), 3000, 50, "edge_of_stability_digits.png",
    ),
}  # fmt: skip


def run(setup: Setup, learning_rate: float, save_dir: str) -> dict[str, list[tuple[int, float]]]:
    code = main(
        [
            *setup.flags,
            f"--model.learning_rate={learning_rate}",
            f"--tensorboard.sharpness_every={setup.every}",
            f"--trainer.max_steps={setup.steps}",
            "--trainer.callbacks=[]",
            f"--trainer.logger.init_args.save_dir={save_dir}",
            f"--trainer.logger.init_args.name=lr_{learning_rate}",
        ]
    )
    if code != 0:
        sys.exit(f"the run at learning rate {learning_rate} ended with exit code {code}")
    (run_dir,) = Path(save_dir).glob(f"lr_{learning_rate}/version_*")
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in ("train/loss", "train/sharpness")}


def draw(curves: dict[float, dict[str, list[tuple[int, float]]]], title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 6), layout="constrained")
    sharpness, loss = figure.subplots(2, 1, sharex=True)
    for i, (learning_rate, tags) in enumerate(curves.items()):
        colour = f"C{i}"
        steps, values = zip(*tags["train/sharpness"], strict=True)
        sharpness.plot(steps, values, color=colour, label=f"sharpness, learning_rate {learning_rate:g}")
        sharpness.axhline(2 / learning_rate, color=colour, linestyle="--", label=f"2 / {learning_rate:g}")
        steps, values = zip(*tags["train/loss"], strict=True)
        loss.plot(steps, values, color=colour, label=f"train/loss, learning_rate {learning_rate:g}")
    sharpness.set_ylabel("largest Hessian eigenvalue")
    sharpness.set_title(title, fontsize="medium")
    sharpness.legend(fontsize="small")
    loss.set_yscale("log")
    loss.set_xlabel("step")
    loss.set_ylabel("loss")
    loss.legend(fontsize="small")
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The edge of stability, drawn from two runs.")
    parser.add_argument("setup", nargs="?", default="mlp", choices=list(SETUPS), help="which network (default: mlp)")
    parser.add_argument("--output", help="the picture's path (default: its name, in the current directory)")
    arguments = parser.parse_args()
    setup = SETUPS[arguments.setup]
    sys.argv = sys.argv[:1]
    with tempfile.TemporaryDirectory() as save_dir:
        curves = {learning_rate: run(setup, learning_rate, save_dir) for learning_rate in setup.learning_rates}
    output = Path(arguments.output or setup.output)
    draw(curves, setup.title, output)
    for learning_rate, tags in curves.items():
        values = [value for _, value in tags["train/sharpness"]]
        print(f"learning_rate {learning_rate:g}: sharpness {values[0]:.3g} at step 0, {max(values):.3g} at most,"
              f" {values[-1]:.3g} at the end; 2 / lr = {2 / learning_rate:g}")  # fmt: skip
    print(f"Wrote {output}")
