"""Writers that look up ``sys.stdout`` or ``sys.stderr`` at each line instead of at set-up.

A test harness such as pytest's ``capsys`` replaces a standard stream after logging was
configured and closes its replacement afterwards. A writer bound at set-up would then write to
the wrong stream, or raise ``ValueError: I/O operation on closed file`` on every later line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Literal, TextIO

StreamName = Literal["stdout", "stderr"]

_LOCKS = {"stdout": threading.Lock(), "stderr": threading.Lock()}


def _check_stream_name(stream_name: str) -> None:
    if stream_name not in _LOCKS:
        msg = f"stream={stream_name!r} is not a standard stream; use 'stdout' or 'stderr'"
        raise ValueError(msg)


class CurrentStreamPrintLogger:
    """structlog logger that writes each rendered line to the standard stream of the moment."""

    def __init__(self, stream_name: StreamName = "stdout") -> None:
        _check_stream_name(stream_name)
        self.stream_name = stream_name

    def __repr__(self) -> str:
        return f"CurrentStreamPrintLogger({self.stream_name!r})"

    def msg(self, message: str) -> None:
        """Write ``message`` and a newline in one call, then flush."""
        stream: TextIO = getattr(sys, self.stream_name)
        with _LOCKS[self.stream_name]:
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class CurrentStreamLoggerFactory:
    """structlog logger factory of ``CurrentStreamPrintLogger`` for one standard stream."""

    def __init__(self, stream_name: StreamName = "stdout") -> None:
        _check_stream_name(stream_name)
        self.stream_name = stream_name

    def __repr__(self) -> str:
        return f"CurrentStreamLoggerFactory({self.stream_name!r})"

    def __call__(self, *args: object) -> CurrentStreamPrintLogger:
        return CurrentStreamPrintLogger(self.stream_name)


class CurrentStreamHandler(logging.StreamHandler[TextIO]):
    """logging handler that writes to whatever ``sys.stdout`` or ``sys.stderr`` is at emit time."""

    def __init__(self, stream_name: StreamName, level: int = logging.NOTSET) -> None:
        _check_stream_name(stream_name)
        super().__init__(getattr(sys, stream_name))
        self.setLevel(level)
        self.stream_name = stream_name

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self.stream_name)
        super().emit(record)

    # The camel-case name is logging.Handler's.
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
        """Write one JSON line naming the logger, instead of the template and its arguments.

        ``logging.Handler.handleError`` prints the record's message and arguments to stderr,
        and those may be the data the message template was given.
        """
        if not logging.raiseExceptions:
            return
        error = sys.exc_info()[1]
        line = {
            "event": "log record could not be rendered",
            "level": "error",
            "logger": record.name,
            "exception_type": type(error).__name__ if error is not None else None,
        }
        try:
            self.stream.write(json.dumps(line) + self.terminator)
            self.flush()
        except (OSError, ValueError):
            # NOTE: a closed or broken stream leaves nowhere to report to, so the line is lost.
            pass
