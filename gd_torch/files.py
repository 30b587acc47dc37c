"""Run files written whole: to a temporary file beside the target, renamed over it once complete, so
a reader (``gd_torch.fit``, ``load_run``, TensorBoard, a second Ctrl-C) sees the old file or the new
one, never half of one."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends, removed
    if it raises. The process id in its name keeps two processes' writes apart; the writer creates
    the file, so it gets the usual permissions (``mkstemp``'s would be private to the owner)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    with written_whole(path) as temporary:
        temporary.write_text(text)
