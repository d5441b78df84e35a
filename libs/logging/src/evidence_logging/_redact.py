"""An exception filter for libraries whose loggers write through handlers of their own.

Streamlit's loggers, for one, do not propagate to the root logger, so the root handler of
``route_stdlib_logging`` never receives their records. A filter on each such logger removes the
traceback and the exception message before the library's own handler formats the record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable


class ExceptionTypeOnlyFilter(logging.Filter):
    """Drop the traceback, stack and exception message of a record, keeping the exception type.

    A record with an exception has ``" (TypeName, message removed)"`` appended to its message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exception = record.exc_info[1]
            if exception is not None:
                try:
                    message = record.getMessage()
                except (TypeError, ValueError):
                    message = str(record.msg)
                record.msg = f"{message} ({type(exception).__name__}, message removed)"
                record.args = None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


_EXCEPTION_TYPE_ONLY = ExceptionTypeOnlyFilter()


def redact_loggers(names: Iterable[str]) -> list[str]:
    """Add ``ExceptionTypeOnlyFilter`` to each named logger and every existing logger below it.

    A logger created after the call does not get the filter, so call this again once the
    library has created more loggers (Streamlit creates them as its modules are imported).
    Adding the filter to a logger that has it already changes nothing.

    Args:
        names: Logger names such as ``"streamlit"``; each named logger is created if missing.

    Returns:
        The sorted names of the loggers that were given the filter.
    """
    if isinstance(names, str):
        msg = f"names={names!r} is one string; pass a collection of logger names"
        raise TypeError(msg)
    requested = set(names)
    existing = [
        name
        for name in list(logging.Logger.manager.loggerDict)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in requested)
    ]
    targets = sorted(requested.union(existing))
    for name in targets:
        logging.getLogger(name).addFilter(_EXCEPTION_TYPE_ONLY)
    return targets
