"""The README's picture of the dashboard, made again from scratch:

    python scripts/screenshot.py     # docs/tensorboard_{custom_scalars,scalars,images}.png

Runs the learning-rate sweep of the article (too small, good, oscillating, slowly diverging), starts
TensorBoard on a free local port and photographs it with headless Chromium (Debian's package
`chromium`: `apt-get install chromium`). The server is stopped at the end.
"""

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEARNING_RATES = ["0.001", "0.01", "0.05", "0.19", "0.21"]
# Unsmoothed: the raw values are the point here.
VIEWS = {
    "tensorboard_custom_scalars.png": "#custom_scalars&_smoothingWeight=0",
    "tensorboard_scalars.png": "#scalars&_smoothingWeight=0&tagFilter=params%2Fintercept%7Ctrain%2Floss",
    "tensorboard_images.png": "#images",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.read() not in (b"[]", b"{}"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from {url} within {seconds} s")
        time.sleep(0.3)


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: chromium not found; on Debian: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work:
        sweep = [sys.executable, "scripts/sweep.py", "--config", "configs/article.yaml", "--learning-rates"]
        sweep += [*LEARNING_RATES, "--save-dir", work, "--trainer.callbacks=[gd_torch.figures.TrajectoryFigure]"]
        subprocess.run(sweep, cwd=REPO, check=True, capture_output=True)
        port = free_port()
        server = subprocess.Popen(  # run from the work folder: the page shows the log dir as given
            [sys.executable, "-m", "tensorboard.main", "--logdir", "article_sweep", "--host", "127.0.0.1"]
            + ["--port", str(port), "--load_fast=false"],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/data/runs")
            for name, view in VIEWS.items():
                shot = REPO / "docs" / name
                # The flags keep Chromium off the network and out of any profile but a fresh one.
                browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
                browser += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
                browser += ["--disable-sync", "--hide-scrollbars", f"--user-data-dir={work}/profile"]
                browser += ["--window-size=1400,1000", "--virtual-time-budget=20000", f"--screenshot={shot}"]
                subprocess.run([*browser, f"http://127.0.0.1:{port}/{view}"], check=True, capture_output=True)
                print(f"wrote {shot.relative_to(REPO)}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
