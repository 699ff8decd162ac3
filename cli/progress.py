"""Progress of long work on stderr: one status line, rewritten in place, on a terminal only.

Quiet when stderr is not a terminal (a pipe, a file, a test) or with ``--quiet``; stdout (the
tables, the JSON) never sees it. The line is cleared once the work is done, so the output that
follows starts on a clean line.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """``progress(message)`` shows ``[elapsed] message``; ``progress.done()`` clears the line."""

    def __init__(self, enabled: bool, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.start = time.perf_counter()
        self.shown = False

    @classmethod
    def for_args(cls, args) -> Progress:
        """On when stderr is a terminal and ``--quiet`` was not given."""
        stream = sys.stderr
        tty = getattr(stream, "isatty", None)
        return cls(bool(tty and tty()) and not getattr(args, "quiet", False), stream)

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        self.stream.write(f"\r\x1b[K[{elapsed:6.1f} s] {message}")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.done()
