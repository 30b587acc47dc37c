"""The README's picture of the edge of stability: full-batch gradient descent (plain SGD) on the MLP of
configs/mlp.yaml at two learning rates, with the sharpness measured every 20 steps.

    python scripts/edge_of_stability.py            # writes docs/edge_of_stability.png (about 30 s)

The sharpness (the loss Hessian's largest eigenvalue) climbs as the network trains until it reaches
2 / lr, the largest value at which descent is stable at that rate, and then stays there while the
loss keeps going down (Cohen et al., "Gradient Descent on Neural Networks Typically Occurs at the
Edge of Stability", ICLR 2021).
"""

import sys
import tempfile
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gd_torch.command import main

REPO = Path(__file__).resolve().parents[1]
LEARNING_RATES = (0.05, 0.1)
STEPS = 4000


def run(learning_rate: float, save_dir: str) -> dict[str, list[tuple[int, float]]]:
    code = main(
        [
            "--config", str(REPO / "configs" / "mlp.yaml"),
            f"--data.init_args.path={REPO / 'data' / 'noisy_sine.csv'}",
            "--data.init_args.val_fraction=0",
            "--model.optimizer=null",  # plain SGD: the bound 2 / lr holds for it
            f"--model.learning_rate={learning_rate}",
            "--tensorboard.sharpness_every=20",
            f"--trainer.max_steps={STEPS}",
            "--trainer.callbacks=[]",
            f"--trainer.logger.init_args.save_dir={save_dir}",
            f"--trainer.logger.init_args.name=lr_{learning_rate}",
        ]
    )  # fmt: skip
    if code != 0:
        sys.exit(f"the run at learning rate {learning_rate} ended with exit code {code}")
    (run_dir,) = Path(save_dir).glob(f"lr_{learning_rate}/version_*")
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in ("train/loss", "train/sharpness")}


def draw(curves: dict[float, dict[str, list[tuple[int, float]]]], path: Path) -> None:
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
    sharpness.set_title("Full-batch gradient descent on an MLP: the sharpness rises until it meets 2 / lr")
    sharpness.legend(fontsize="small")
    loss.set_yscale("log")
    loss.set_xlabel("step")
    loss.set_ylabel("loss")
    loss.legend(fontsize="small")
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.argv = sys.argv[:1]
    with tempfile.TemporaryDirectory() as save_dir:
        curves = {learning_rate: run(learning_rate, save_dir) for learning_rate in LEARNING_RATES}
    output = REPO / "docs" / "edge_of_stability.png"
    draw(curves, output)
    print(f"Wrote {output}")
