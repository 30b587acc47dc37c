"""Run files written whole: to a temporary file beside the target, renamed over it once complete, so
a reader (``gd_torch.fit``, ``load_run``, TensorBoard, a second Ctrl-C) sees the old file or the new
one, never half of one. The file's data reach the disk before the rename and the rename after it
(``fsync`` of the file, then of the directory): a machine lost in between leaves the old file, not an
empty new one (a journaling file system may commit the rename before the data)."""

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
        replace_durably(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def replace_durably(written: Path, path: Path) -> None:
    """``os.replace(written, path)`` with the data on disk first and the rename after."""
    synced(written)
    os.replace(written, path)
    synced(path.parent)


def synced(path: Path) -> None:
    """``fsync`` a file or a directory (where the platform lets a directory be opened: not Windows)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # a directory on Windows
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, text: str) -> None:
    with written_whole(path) as temporary:
        temporary.write_text(text)
