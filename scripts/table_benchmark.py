"""What reading a table costs: gd_torch against pyarrow doing the same read alone, in the same run.

    python scripts/table_benchmark.py                  # the full table (about ten minutes on 2 CPU cores)
    python scripts/table_benchmark.py --quick          # small sizes: checks that it runs
    python scripts/table_benchmark.py --output docs/performance.md   # appended to the file
    python scripts/table_benchmark.py --rows 0 --stream-rows 30000000   # streaming only (scripts/cuda_check.sh)

Two measurements, each as whole processes, gd_torch's and the library's taking turns, ``--repeats``
times (medians; peak memory is the largest ``ru_maxrss`` of the process):

1. **Start.** A table of ``--rows`` rows (8 float32 features and y) as CSV and as Parquet. gd_torch:
   ``configs/csv.yaml`` on it (x left out: every column but y), from process start to the end of its
   first step. The library: ``import lightning.pytorch``, then ``pyarrow.csv.read_csv`` (float32
   columns) or ``pyarrow.parquet.read_table``, and ``torch.from_numpy`` of every column. Memory is
   counted above a bare process that imported the same libraries; the targets: at most 1.5x the
   library's time, at most 2x the float32 data's bytes.
2. **Streaming.** A directory of Parquet shards of ``--stream-rows`` rows, at least 3x larger than
   the streamed run's own peak resident memory. gd_torch: ``chunk_rows`` streaming, full batch; rows
   per second of an epoch (one step: every row read, its gradient summed), after a first epoch that
   warms the page cache. The library: ``pyarrow.dataset`` reading the same files in batches of the
   same size, each column to a tensor, rows per second of its second pass; with pyarrow's defaults
   (the target: 0.7x its rate), and with the read options gd_torch uses (shown beside it). On a
   machine with CUDA gd_torch's run trains on the GPU, its chunks copied from pinned memory.
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FEATURES = 8
COLUMNS = [f"x{i}" for i in range(1, FEATURES + 1)] + ["y"]


# --- the data -------------------------------------------------------------------------------------


def write_tables(directory: Path, rows: int, stream_rows: int, shard_rows: int) -> dict[str, Path]:
    """The start's CSV and Parquet of ``rows`` rows, and the streaming's Parquet shards."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    def block(n: int, seed: int) -> pa.Table:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, FEATURES), dtype=np.float32)
        y = x @ np.linspace(-2, 2, FEATURES, dtype=np.float32) + 1 + rng.standard_normal(n, dtype=np.float32) * 0.1
        return pa.table({**{c: x[:, i] for i, c in enumerate(COLUMNS[:-1])}, "y": y})

    paths = {"csv": directory / "table.csv", "parquet": directory / "table.parquet", "shards": directory / "shards"}
    writer_csv = pcsv.CSVWriter(paths["csv"], block(1, 0).schema)
    writer_parquet = pq.ParquetWriter(paths["parquet"], block(1, 0).schema)
    for start in range(0, rows, shard_rows):
        part = block(min(shard_rows, rows - start), start)
        writer_csv.write_table(part)
        writer_parquet.write_table(part)
    writer_csv.close()
    writer_parquet.close()
    paths["shards"].mkdir()
    for i, start in enumerate(range(0, stream_rows, shard_rows)):
        shard = block(min(shard_rows, stream_rows - start), 10_000 + i)
        pq.write_table(shard, paths["shards"] / f"part-{i:04d}.parquet")
    return paths


# --- the workers: each one a process of its own --------------------------------------------------


def worker_bare() -> None:
    import lightning.pytorch  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import torch  # noqa: F401


def worker_library(path: str) -> None:
    import lightning.pytorch  # noqa: F401
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    import torch

    if path.endswith(".csv"):
        options = pcsv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.float32()))
        table = pcsv.read_csv(path, convert_options=options)
    else:
        table = pq.read_table(path)
    columns = [torch.from_numpy(table.column(c).to_numpy()) for c in COLUMNS]
    assert len(columns[0]) == table.num_rows
    print(f"step {time.time()}", flush=True)


def gd_torch_argv(path: str, save_dir: str, *flags: str) -> list[str]:
    return [
        "--config", str(REPO / "configs" / "csv.yaml"), f"--data.init_args.path={path}", "--data.init_args.x=null",
        "--trainer.enable_progress_bar=false", "--trainer.callbacks=[__main__.StepClock]",
        f"--trainer.logger.init_args.save_dir={save_dir}", *flags,
    ]  # fmt: skip


def worker_gd_torch(path: str, steps: int, *flags: str) -> None:
    """The command in this process, a clock at each step's end (printed as it goes)."""
    import lightning.pytorch as pl

    from gd_torch.command import main

    class StepClock(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            print(f"step {time.time()}", flush=True)

    sys.modules["__main__"].StepClock = StepClock  # importable by class_path
    with tempfile.TemporaryDirectory() as save_dir:
        code = main(gd_torch_argv(path, save_dir, f"--trainer.max_steps={steps}", *flags))
    assert code == 0, f"gd_torch failed with exit code {code}"


def worker_stream_library(directory: str, chunk_rows: str, options: str = "defaults") -> None:
    """Two passes over the shards in batches of ``chunk_rows`` rows, each column to a tensor: with
    pyarrow's defaults, or with the read options gd_torch's streaming uses (``gd_torch``)."""
    import pyarrow.dataset as ds
    import torch

    settings, files = {}, None
    if options == "gd_torch":  # as gd_torch.streams reads: page by page, through a memory map
        from pyarrow.fs import LocalFileSystem

        from gd_torch.pieces import READ_OPTIONS

        settings = {**READ_OPTIONS, "fragment_scan_options": ds.ParquetFragmentScanOptions(pre_buffer=False)}
        files = LocalFileSystem(use_mmap=True)
    dataset = ds.dataset(directory, format="parquet", filesystem=files)
    for _ in range(2):
        rows = 0
        for batch in dataset.to_batches(columns=COLUMNS, batch_size=int(chunk_rows), **settings):
            columns = [torch.from_numpy(batch.column(i).to_numpy()) for i in range(len(COLUMNS))]
            rows += len(columns[0])
        print(f"step {time.time()}", flush=True)


WORKERS = {"bare": worker_bare, "library": worker_library, "gd_torch": worker_gd_torch,
           "stream-library": worker_stream_library}  # fmt: skip


# --- measuring ------------------------------------------------------------------------------------


def run(*args: str) -> tuple[float, list[float], float]:
    """A worker as a process: its start (wall clock), the clock lines it printed (each step's end, or
    its read's), its peak resident MiB (the largest of this process's children: run one a process)."""
    import resource

    start = time.time()
    done = subprocess.run([sys.executable, __file__, "--worker", *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{done.stderr[-3000:]}")
    clocks = [float(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("step ")]
    return start, clocks, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def in_turns(mode: str, runs: list[tuple[str, ...]], repeats: int) -> list[tuple[float, float]]:
    """Each run's median seconds (as its ``--measure`` or ``--measure-rate`` process prints them) and its
    peak MiB, over repeats; each repeat in a fresh parent process so that its peak memory is its own,
    the runs taking turns within a repeat, so a slow minute of a shared machine falls on all of them."""
    seconds: list[list[float]] = [[] for _ in runs]
    peaks: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for i, args in enumerate(runs):
            done = subprocess.run([sys.executable, __file__, mode, *args], cwd=REPO, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-3000:])
            took, peak = map(float, done.stdout.split())
            seconds[i].append(took)
            peaks[i].append(peak)
    return [(statistics.median(s), max(p)) for s, p in zip(seconds, peaks, strict=True)]


def measured(runs: list[tuple[str, ...]], repeats: int) -> list[tuple[float, float]]:
    """Each run's median seconds from process start to its first step (or its read), and its peak MiB."""
    return in_turns("--measure", runs, repeats)


def measure_once(*args: str) -> None:
    start, clocks, peak = run(*args)
    print(f"{clocks[0] - start if clocks else 0.0} {peak}")


def rates(runs: list[tuple[str, ...]], rows: int, repeats: int) -> list[tuple[float, float]]:
    """Each run's rows per second in its last pass (over its median seconds), and its peak MiB."""
    return [(rows / seconds, peak) for seconds, peak in in_turns("--measure-rate", runs, repeats)]


def measure_rate_once(*args: str) -> None:
    _, clocks, peak = run(*args)
    print(f"{clocks[-1] - clocks[-2]} {peak}")  # the last pass: the page cache warmed by the ones before


def verdict(ratio: float, target: float, at_most: bool = True) -> str:
    met = ratio <= target if at_most else ratio >= target
    return f"{'<=' if at_most else '>='} {target}x: {'met' if met else 'MISSED'}"


def tables(rows: int, stream_rows: int, chunk_rows: int, repeats: int) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        paths = write_tables(Path(directory), rows, stream_rows, min(chunk_rows, 1_000_000))
        lines = start_table(paths, rows, repeats) if rows else []
        return lines + stream_table(paths, stream_rows, chunk_rows, repeats)


def start_table(paths: dict[str, Path], rows: int, repeats: int) -> list[str]:
    data_mib = rows * len(COLUMNS) * 4 / 2**20
    ((_, bare),) = measured([("bare",)], repeats)
    lines = [
        f"A table of {rows:,} rows ({FEATURES} float32 features and y: {data_mib:,.0f} MiB as float32;"
        f" CSV {paths['csv'].stat().st_size / 2**20:,.0f} MiB), from process start to the first step."
        f" Memory above a bare process that imported the same libraries ({bare:,.0f} MiB):",
        "",
        "| file | gd_torch | pyarrow + torch.from_numpy + import lightning | gd_torch / library | target |"
        " gd_torch memory | / float32 data | target |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for kind in ("csv", "parquet"):
        path = str(paths[kind])
        (ours, ours_peak), (library, _) = measured([("gd_torch", path, "1"), ("library", path)], repeats)
        above = ours_peak - bare
        lines.append(
            f"| {kind} | {ours:.1f} s | {library:.1f} s | {ours / library:.2f}x | {verdict(ours / library, 1.5)} |"
            f" {above:,.0f} MiB | {above / data_mib:.2f}x | {verdict(above / data_mib, 2.0)} |"
        )
    return [*lines, ""]


def stream_table(paths: dict[str, Path], stream_rows: int, chunk_rows: int, repeats: int) -> list[str]:
    import torch

    stream_mib = stream_rows * len(COLUMNS) * 4 / 2**20
    shards = str(paths["shards"])
    flags = (f"--data.init_args.chunk_rows={chunk_rows}", "--curvature.enabled=false")
    (ours, ours_peak), (library, library_peak), (same, same_peak) = rates(
        [("gd_torch", shards, "3", *flags), ("stream-library", shards, str(chunk_rows)),
         ("stream-library", shards, str(chunk_rows), "gd_torch")], stream_rows, repeats,
    )  # fmt: skip
    device = "a GPU (chunks through pinned memory)" if torch.cuda.is_available() else "the CPU"
    return [
        f"A directory of Parquet shards, {stream_rows:,} rows ({stream_mib:,.0f} MiB as float32), streamed"
        f" in chunks of {chunk_rows:,} rows to {device} (full batch: one step a pass), page cache warm:",
        "",
        "| run | rows per second | / library | target | peak memory | data / peak memory |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
        f"| gd_torch, chunk_rows {chunk_rows:,} | {ours:,.0f} | {ours / library:.2f}x |"
        f" {verdict(ours / library, 0.7, at_most=False)} | {ours_peak:,.0f} MiB | {stream_mib / ours_peak:.1f}x |",
        f"| pyarrow.dataset alone, batches of {chunk_rows:,} | {library:,.0f} | 1.00x | | {library_peak:,.0f} MiB |"
        f" {stream_mib / library_peak:.1f}x |",
        f"| the same with gd_torch's read options | {same:,.0f} | {same / library:.2f}x | gd_torch / this:"
        f" {ours / same:.2f}x | {same_peak:,.0f} MiB | {stream_mib / same_peak:.1f}x |",
    ]


def header() -> str:
    import lightning
    import pyarrow
    import torch

    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"Measured {datetime.date.today()} on {platform.machine()} with {os.cpu_count()} CPU cores{gpu}"
        f" ({platform.platform()}); Python {platform.python_version()}, torch {torch.__version__},"
        f" lightning {lightning.__version__}, pyarrow {pyarrow.__version__}."
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        WORKERS[sys.argv[2]](*sys.argv[3:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--measure":
        measure_once(*sys.argv[2:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--measure-rate":
        measure_rate_once(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="the start's table; 0: streaming only")
    parser.add_argument("--stream-rows", type=int, default=100_000_000)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: checks that it runs")
    parser.add_argument("--output", type=Path, help="also append the tables to this markdown file")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.stream_rows, args.chunk_rows, args.repeats = 20_000, 60_000, 10_000, 1
    lines = [header(), "", *tables(args.rows, args.stream_rows, args.chunk_rows, args.repeats)]
    print("\n".join(lines))
    if args.output:
        with args.output.open("a") as file:
            file.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
