"""What the structure costs: gd_torch against a plain PyTorch loop and the article's NumPy loop.

    python scripts/benchmark.py                      # the full table (a few minutes on 2 CPU cores)
    python scripts/benchmark.py --output docs/performance.md
    python scripts/benchmark.py --quick              # tiny sizes: checks that it runs

Every row is the same job: the article's model (slope frozen, intercept learned) on N synthetic
points of a noisy line, full batch, `mse_loss(reduction="mean")`, SGD at 0.1, one TensorBoard point
per step for the loss, the slope, the intercept, its gradient, the step size and the learning rate.

- gd_torch: `gd_torch.command.main` with that config, as a user runs it (callbacks, checkpoint, summary).
- plain: a hand-written PyTorch loop over the same on-device tensors, writing the same tags with
  `SummaryWriter.add_scalar`; it keeps the values on the device and writes them every 100 steps, so
  it forces no per-step device sync either.
- numpy: the article's own loop (`y_pred = m * x + b`, `gradient_b = ...`) on float64 arrays.

Each implementation runs in its own process (peak memory is that process's), `--repeats` times; a
run's time per step is measured over its steps after the first 10% (warm-up, compilation), with a
device sync at both ends on CUDA; the table gives the median over the repeats. On CUDA the
bytes-bound limit of a step is reading x and y once, 8 N bytes, at the measured device-to-device
copy bandwidth. The last row times the whole article run as a process against
`python -c "import lightning.pytorch"`. The full run then appends scripts/first_step.py's table: an
MLP of 8.4M parameters from process start to its first step, with the curvature and without.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEARNING_RATE = 0.1
SLOPE, INTERCEPT, NOISE = 2.0, 1.0, 0.5

# (device, N, steps, target ratio to plain or None)
FULL = [
    ("cpu", 5, 3000, 2.0),
    ("cpu", 10**4, 2000, None),
    ("cpu", 10**6, 200, None),
    ("cpu", 10**7, 40, 1.10),
    ("cuda", 10**8, 300, 1.10),
]
QUICK = [("cpu", 5, 200, 2.0), ("cuda", 10**6, 100, 1.10)]  # checks that it runs: one CPU row


# --- the workers: one process per implementation and size ---------------------------------------


def points(n: int, device: str):
    import torch

    from gd_torch.data import SyntheticLine

    return SyntheticLine(n=n, slope=SLOPE, intercept=INTERCEPT, noise_std=NOISE).make_points(torch.device(device))


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def per_step(times: list[float]) -> float:
    """Seconds per step after the first 10% of the steps."""
    start = len(times) // 10
    return (times[-1] - times[start]) / (len(times) - 1 - start)


def run_gd_torch(n: int, steps: int, device: str, compile: bool) -> float:
    import lightning.pytorch as pl

    from gd_torch.command import main

    times: list[float] = []

    class StepTimer(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step in (steps // 10 + 1, steps):
                sync(device)
            times.append(time.perf_counter())

    sys.modules["__main__"].StepTimer = StepTimer  # importable by class_path
    with tempfile.TemporaryDirectory() as save_dir:
        code = main(
            [
                "--model.model=gd_torch.models.Line",
                "--model.model.init_args.learn_slope=false",
                f"--model.model.init_args.slope={SLOPE}",
                f"--model.learning_rate={LEARNING_RATE}",
                "--model.reduction=mean",
                f"--model.compile={compile}",
                "--data=gd_torch.data.SyntheticLine",
                f"--data.init_args.n={n}",
                f"--data.init_args.slope={SLOPE}",
                f"--data.init_args.intercept={INTERCEPT}",
                f"--data.init_args.noise_std={NOISE}",
                f"--trainer.max_steps={steps}",
                f"--trainer.accelerator={device}",
                "--trainer.enable_progress_bar=false",
                "--trainer.enable_model_summary=false",
                "--trainer.callbacks+=__main__.StepTimer",
                f"--trainer.logger.init_args.save_dir={save_dir}",
            ]
        )
    assert code == 0, f"gd_torch run failed with exit code {code}"
    return per_step(times)


def run_plain(n: int, steps: int, device: str) -> float:
    import torch
    import torch.nn.functional as F
    from torch.utils.tensorboard import SummaryWriter

    x, y = points(n, device)
    slope = torch.tensor(SLOPE, device=device)
    intercept = torch.nn.Parameter(torch.zeros((), device=device))
    optimizer = torch.optim.SGD([intercept], lr=LEARNING_RATE)
    times, pending = [], []
    with tempfile.TemporaryDirectory() as log_dir:
        writer = SummaryWriter(log_dir)
        for step in range(steps):
            before = intercept.detach().clone()
            loss = F.mse_loss(slope * x + intercept, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step_size = (intercept.detach() - before).abs()
            pending.append(torch.stack([loss.detach(), slope, intercept.detach(), intercept.grad, step_size]))
            if len(pending) == 100 or step == steps - 1:
                rows = torch.stack(pending).tolist()
                for k, (value, m, b, grad, size) in enumerate(rows, start=step + 1 - len(pending)):
                    writer.add_scalar("train/loss", value, k)
                    writer.add_scalar("params/slope", m, k)
                    writer.add_scalar("params/intercept", b, k)
                    writer.add_scalar("grads/intercept", grad, k)
                    writer.add_scalar("train/step_size", size, k)
                    writer.add_scalar("train/learning_rate", optimizer.param_groups[0]["lr"], k)
                pending.clear()
            if step + 1 in (steps // 10 + 1, steps):
                sync(device)
            times.append(time.perf_counter())
        writer.close()
    return per_step(times)


def run_numpy(n: int, steps: int) -> float:
    import numpy as np

    x, y = (t.double().numpy() for t in points(n, "cpu"))
    b, m, learning_rate = 0.0, SLOPE, LEARNING_RATE
    times = []
    for _ in range(steps):  # the article's loop, with the mean instead of the sum
        y_pred = m * x + b
        loss = np.mean((y - y_pred) ** 2)  # noqa: F841 - the article computes it for its table
        gradient_b = -2 * np.mean(y - y_pred)
        b = b - learning_rate * gradient_b
        times.append(time.perf_counter())
    return per_step(times)


def copy_bandwidth(n: int) -> float:
    """Device-to-device copy bandwidth in bytes per second, bytes read plus bytes written."""
    import torch

    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    start, repeats = time.perf_counter(), 20
    for _ in range(repeats):
        b.copy_(a)
    torch.cuda.synchronize()
    return 2 * a.numel() * a.element_size() * repeats / (time.perf_counter() - start)


def worker(impl: str, n: int, steps: int, device: str, repeats: int) -> dict:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if impl == "numpy":
        seconds = [run_numpy(n, steps) for _ in range(repeats)]
    elif impl == "plain":
        seconds = [run_plain(n, steps, device) for _ in range(repeats)]
    else:
        seconds = [run_gd_torch(n, steps, device, compile=impl == "compiled") for _ in range(repeats)]
    result = {"seconds_per_step": statistics.median(seconds), "peak_rss_mib": _peak_rss_mib()}
    if device == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        if impl == "plain":
            result["copy_bandwidth"] = copy_bandwidth(n)
    return result


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the parent: runs the workers, prints the table ---------------------------------------------


def measure(impl: str, n: int, steps: int, device: str, repeats: int) -> dict:
    argv = [sys.executable, __file__, "--worker", impl, str(n), str(steps), device, str(repeats)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=_env())
    if done.returncode != 0:
        raise RuntimeError(f"{impl} at N={n} on {device} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def process_seconds(commands: list[list[str]], repeats: int) -> list[float]:
    """Median wall time of each command, run in turns so that a change in load hits them alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(repeats):
        for argv, spent in zip(commands, times, strict=True):
            start = time.perf_counter()
            subprocess.run(argv, cwd=REPO, capture_output=True, check=True, env=_env())
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 1e-2 else f"{seconds * 1e3:.1f}"


def verdict(ratio: float, target: float | None) -> str:
    if target is None:
        return ""
    return f"<= {target:.2f}x: {'met' if ratio <= target else 'MISSED'}"


def table(cases, repeats: int, process_repeats: int) -> list[str]:
    import torch

    rows = [
        "| case | N | steps | gd_torch ms/step | plain ms/step | gd_torch / plain | numpy ms/step | peak memory"
        " gd_torch / plain | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for device, n, steps, target in cases:
        if device == "cuda" and not torch.cuda.is_available():
            continue
        ours = measure("gd_torch", n, steps, device, repeats)
        plain = measure("plain", n, steps, device, repeats)
        numpy = measure("numpy", n, steps, "cpu", repeats) if device == "cpu" else None
        ratio = ours["seconds_per_step"] / plain["seconds_per_step"]
        memory_key = "peak_cuda_mib" if device == "cuda" else "peak_rss_mib"
        memory = f"{ours[memory_key]:.0f} / {plain[memory_key]:.0f} MiB" + (" (GPU)" if device == "cuda" else "")
        rows.append(
            f"| {device} | {n:,} | {steps} | {ms(ours['seconds_per_step'])} | {ms(plain['seconds_per_step'])}"
            f" | {ratio:.2f}x | {ms(numpy['seconds_per_step']) if numpy else '-'} | {memory}"
            f" | {verdict(ratio, target)} |"
        )
        if device == "cuda":
            bound = 8 * n / plain["copy_bandwidth"]
            compiled = measure("compiled", n, steps, device, repeats)
            for name, result, goal in (("eager", ours, None), ("compile", compiled, 2.5)):
                over = result["seconds_per_step"] / bound
                rows.append(
                    f"| cuda, {name} vs bytes-bound ({ms(bound)} ms: 8N bytes at"
                    f" {plain['copy_bandwidth'] / 1e12:.2f} TB/s) | {n:,} | {steps} | {ms(result['seconds_per_step'])}"
                    f" | | {over:.2f}x bound | | | {verdict(over, goal)} |"
                )
    if not process_repeats:
        return rows
    with tempfile.TemporaryDirectory() as save_dir:
        article = [sys.executable, "scripts/train.py", "--config", "configs/article.yaml"]
        article += [f"--trainer.logger.init_args.save_dir={save_dir}"]
        imports = [sys.executable, "-c", "import lightning.pytorch"]
        whole, imports = process_seconds([article, imports], process_repeats)
    rows.append(
        f"| article as a process vs `import lightning.pytorch` | 5 | 30 | {whole:.2f} s | {imports:.2f} s"
        f" | {whole / imports:.3f}x | | | {verdict(whole / imports, 1.15)} |"
    )
    return rows


def header() -> list[str]:
    import lightning
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return [
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} with {os.cpu_count()} CPU cores"
        f" ({platform.processor() or platform.platform()}), {device};"
        f" Python {platform.python_version()}, torch {torch.__version__}, lightning {lightning.__version__}.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repeat: checks that it runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, help="also write the table to this markdown file")
    parser.add_argument("--cuda-only", action="store_true", help="only the CUDA rows (with --quick: small N)")
    worker_args = ("IMPL", "N", "STEPS", "DEVICE", "REPEATS")
    parser.add_argument("--worker", nargs=5, metavar=worker_args, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        impl, n, steps, device, repeats = args.worker
        print(json.dumps(worker(impl, int(n), int(steps), device, int(repeats))))
        return
    repeats = 1 if args.quick else args.repeats
    cases = [case for case in (QUICK if args.quick else FULL) if case[0] == "cuda" or not args.cuda_only]
    lines = header() + table(cases, repeats, process_repeats=0 if args.cuda_only else 1 if args.quick else 7)
    if not (args.quick or args.cuda_only):  # a large model's start: scripts/first_step.py
        from first_step import table as first_step_table  # this script's own folder is on sys.path

        lines += ["", *first_step_table([2048, 2048, 2048], repeats)]
    print("\n".join(lines))
    if args.output:
        args.output.write_text("# Performance\n\n" + __doc__.split("\n\n", 1)[1] + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
