"""One config, several learning rates, as sibling runs that TensorBoard overlays:

    python scripts/sweep.py --config configs/article.yaml --learning-rates 0.001 0.01 0.05 0.19 0.21
    tensorboard --logdir runs/article_sweep

Each rate trains as its own run, ``<save_dir>/<name>/lr_<rate>/version_<n>``; a run that diverges is
a result like any other and the sweep goes on. Any other flag goes to every run as it is
(``--trainer.max_steps 100``). Exit code: 0 when every run trained or diverged, 2 for an invalid
config, 130 when interrupted, 1 when a run failed otherwise.
"""

import argparse
import json
import sys
from pathlib import Path

from gd_torch.command import main
from gd_torch.outcome import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK


def sweep(config: Path, learning_rates: list[float], save_dir: str, name: str, extra: list[str]) -> int:
    outcomes = []
    for learning_rate in learning_rates:
        print(f"\n== learning_rate {learning_rate:g}", flush=True)
        code = main(
            [
                "--config",
                str(config),
                *extra,
                f"--model.learning_rate={learning_rate!r}",
                f"--trainer.logger.init_args.save_dir={save_dir}",
                f"--trainer.logger.init_args.name={name}/lr_{learning_rate:g}",
            ]
        )
        outcomes.append((learning_rate, code))
        if code in (EXIT_INVALID, EXIT_INTERRUPTED):
            return code
    print(f"\nSweep of {len(learning_rates)} learning rates in {Path(save_dir) / name}:")
    print(f"  {'learning_rate':<14} {'stop_reason':<12} final_loss")
    failed = False
    for learning_rate, code in outcomes:
        runs = (Path(save_dir) / name / f"lr_{learning_rate:g}").glob("version_*/summary.json")
        newest = max(runs, key=lambda path: path.stat().st_mtime, default=None)
        summary = json.loads(newest.read_text()) if newest else {}
        final_loss = summary.get("final_loss")
        shown = "not finite" if final_loss is None else f"{final_loss:.6g}"
        print(f"  {learning_rate:<14g} {summary.get('stop_reason', f'exit {code}'):<12} {shown}")
        # A diverged run exits 1 too, and is a result; a run that failed otherwise is not.
        failed |= code == EXIT_FAILED and summary.get("stop_reason") != "diverged"
    print(f"view them together: tensorboard --logdir {Path(save_dir) / name}")
    return EXIT_FAILED if failed else EXIT_OK


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the config every run starts from")
    parser.add_argument("--learning-rates", type=float, nargs="+", required=True, metavar="RATE")
    parser.add_argument("--save-dir", default="runs", help="where the sweep's directory goes (default: runs)")
    parser.add_argument("--name", help="the sweep's directory (default: <config name>_sweep)")
    args, extra = parser.parse_known_args(argv)
    bad = [rate for rate in args.learning_rates if not rate > 0]
    if bad:
        parser.error(f"--learning-rates must all be > 0, got {bad[0]:g}")
    args.name = args.name or f"{args.config.stem}_sweep"
    return args, extra


if __name__ == "__main__":
    args, extra = parse(sys.argv[1:])
    sys.argv = sys.argv[:1]  # main() gets its arguments explicitly
    sys.exit(sweep(args.config, args.learning_rates, args.save_dir, args.name, extra))
