"""A large model's start: seconds from process start to the end of its first step, and peak memory.

    python scripts/first_step.py                 # the 8.4M-parameter MLP on the CPU (minutes)
    python scripts/first_step.py --hidden 256 256 --quick
    python scripts/first_step.py --hidden 5773 5773 5773 5773 --quick   # ~100M parameters, on a GPU

The job: ``configs/synthetic.yaml`` (10,000 points, batches of 100) with an MLP of three hidden layers
of 2048 (8,398,849 parameters), one SGD step, as a whole process. Rows: the command with
``curvature.enabled`` false, auto (skipped above its budget, with a line) and true (bounded by
``max_points`` and ``max_iterations``), and a plain PyTorch script that builds the same MLP and data
and takes the same step. Each runs ``--repeats`` times in turns; the table gives the median and the
largest peak resident memory (the process's own ``ru_maxrss``: host memory, also on a GPU). Every row
runs on CUDA when it is available (the command's accelerator is auto). scripts/benchmark.py appends
this table to its full run; scripts/cuda_check.sh runs the 100M-parameter one.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PLAIN = """
import sys, torch
from torch import nn
hidden = [int(h) for h in sys.argv[1:]]
device = "cuda" if torch.cuda.is_available() else "cpu"  # as the command's accelerator: auto
torch.manual_seed(0)
x = (torch.rand(10_000) * 10 - 5).to(device)
y = 2 * x + 1 + 0.5 * torch.randn(10_000, device=device)
widths, layers = [1, *hidden], []
for a, b in zip(widths, widths[1:]):
    layers += [nn.Linear(a, b), nn.Tanh()]
model = nn.Sequential(*layers, nn.Linear(widths[-1], 1)).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss = nn.functional.mse_loss(model(x[:100, None]).squeeze(-1), y[:100])
loss.backward()
optimizer.step()
print(loss.item())
"""


def run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    out, err = process.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... failed:\n{err[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def cases(hidden: list[int], save_dir: str) -> list[tuple[str, list[str]]]:
    command = [
        sys.executable, "scripts/train.py", "--config", "configs/synthetic.yaml", "--trainer.max_steps=1",
        "--model.model=gd_torch.models.MLP", f"--model.model.init_args.hidden=[{', '.join(map(str, hidden))}]",
        "--trainer.enable_progress_bar=false", "--trainer.callbacks=[]",
        f"--trainer.logger.init_args.save_dir={save_dir}",
    ]  # fmt: skip
    return [
        ("gd_torch, curvature false", [*command, "--curvature.enabled=false"]),
        ("gd_torch, curvature auto", [*command, "--curvature.enabled=auto"]),
        (
            "gd_torch, curvature true (max_points 256, max_iterations 20)",
            [*command, "--curvature.enabled=true", "--curvature.max_points=256", "--curvature.max_iterations=20"],
        ),
        ("plain PyTorch script", [sys.executable, "-c", PLAIN, *map(str, hidden)]),
    ]


def table(hidden: list[int], repeats: int) -> list[str]:
    parameters = sum(a * b + b for a, b in zip([1, *hidden], [*hidden, 1], strict=True))
    rows = [
        f"MLP {hidden} ({parameters:,} parameters) on synthetic.yaml, one step, as a whole process:",
        "",
        "| run | seconds to the first step's end | / curvature false | peak memory | / curvature false |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as save_dir:
        runs = cases(hidden, save_dir)
        measured: list[list[tuple[float, float]]] = [[] for _ in runs]
        for _ in range(repeats):
            for (_, argv), results in zip(runs, measured, strict=True):
                results.append(run(argv))
    seconds = [statistics.median(s for s, _ in results) for results in measured]
    memory = [max(m for _, m in results) for results in measured]
    for (name, _), s, m in zip(runs, seconds, memory, strict=True):
        rows.append(f"| {name} | {s:.1f} s | {s / seconds[0]:.2f}x | {m:,.0f} MiB | {m / memory[0]:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[2048, 2048, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args()
    print("\n".join(table(args.hidden, 1 if args.quick else args.repeats)))


if __name__ == "__main__":
    main()
