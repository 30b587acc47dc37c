"""A closed pipe or terminal stops the printing, not the training.

``python scripts/train.py ... | head -3``, or a pager quit early: the reader is gone, and the next line
the run prints raises ``BrokenPipeError`` (Python ignores SIGPIPE) from inside a callback, which would
end the run as failed. A closed terminal is the same with ``EIO`` (the run itself then ends after
its step, on the SIGHUP that came with it: gd_torch.stopping). The console's streams are wrapped so
that either points the stream at ``os.devnull`` instead, and the run goes on to its end: its
checkpoint, summary.json and exit code are as if the output had been read.

Only the standard library here: installed before torch and Lightning load (gd_torch.entry).
"""

import errno
import os
import sys


class Unbroken:
    """A text stream that, once its reader has gone, writes to ``os.devnull`` from then on."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            if not _reader_gone(error):
                raise
            self._point_at_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            if not _reader_gone(error):
                raise
            self._point_at_devnull()

    def _point_at_devnull(self) -> None:
        # The descriptor itself now leads to devnull: the stream's buffered rest, the interpreter's
        # last flush at exit, and anything writing to the descriptor directly all go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...: the stream's own
        return getattr(self._stream, name)


def _reader_gone(error: OSError) -> bool:
    """A pipe whose reader has gone (EPIPE), or a terminal that has closed (EIO)."""
    return isinstance(error, BrokenPipeError) or error.errno == errno.EIO


def keep_going_when_closed() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (each once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, Unbroken):
            setattr(sys, name, Unbroken(stream))
