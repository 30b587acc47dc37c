"""Run files written whole: to a temporary file beside the target, renamed over it once complete, so
a reader (``gd_torch.fit``, ``load_run``, a second Ctrl-C) sees the old file or the new one, never half."""

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
