"""A closed pipe stops the printing, not the training.

``python scripts/train.py ... | head -3``, or a pager quit early: the reader is gone, and the next line
the run prints raises ``BrokenPipeError`` (Python ignores SIGPIPE) from inside a callback, which would
end the run as failed. The console's streams are wrapped so that a broken pipe points the stream at
``os.devnull`` instead, and the run goes on to its end: its checkpoint, summary.json and exit code are
as if the output had been read.

Only the standard library here: installed before torch and Lightning load (gd_torch.entry).
"""

import os
import sys


class Unbroken:
    """A text stream that, once its reader has gone, writes to ``os.devnull`` from then on."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        # The descriptor itself now leads to devnull: the stream's buffered rest, the interpreter's
        # last flush at exit, and anything writing to the descriptor directly all go nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...: the stream's own
        return getattr(self._stream, name)


def keep_going_when_closed() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (each once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, Unbroken):
            setattr(sys, name, Unbroken(stream))
