"""Reduction of a logged exception to its type, and optionally the code locations of its frames.

An exception message or a traceback may quote the data being processed (a row, a document),
so no log line carries either.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType

from structlog.typing import EventDict, WrappedLogger


def exception_frames(tb: TracebackType | None) -> list[str]:
    """Return ``file:line function`` for each frame of a traceback, without any message."""
    return [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(tb)
    ]


class ExceptionSummarizer:
    """structlog processor that replaces ``exc_info`` by ``exception_type``, the exception's name.

    ``exc_info`` may be ``True`` (the exception being handled), an exception or a
    ``sys.exc_info()`` tuple. The processor also removes ``stack_info`` and any ``exception`` text
    that an earlier processor formatted.

    Args:
        include_frames: Also add ``frames``, the ``file:line function`` of each traceback frame.
    """

    def __init__(self, *, include_frames: bool = False) -> None:
        self.include_frames = include_frames

    def __repr__(self) -> str:
        return f"ExceptionSummarizer(include_frames={self.include_frames!r})"

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        exc_info = event_dict.pop("exc_info", None)
        event_dict.pop("exception", None)
        event_dict.pop("stack_info", None)
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[0], type):
            event_dict["exception_type"] = exc_info[0].__name__
            if self.include_frames:
                tb = exc_info[2] if isinstance(exc_info[2], TracebackType) else None
                event_dict["frames"] = exception_frames(tb)
        return event_dict
