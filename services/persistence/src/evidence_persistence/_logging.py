"""structlog set-up of the worker and the CLI: JSON lines on stdout with an allow-list of keys.

The worker handles records that carry health data: policy numbers, feature values and, when raw
evidence storage is on, the MIB and Rx XML. Exception messages can quote those values (a sink or
database error quoting a row, say), so no log line carries an exception message or a traceback.
Only the keys in ``ALLOWED_KEYS`` reach the output, with scalar values cut to ``_MAX_STRING``
characters. An exception is reduced to its type, and to the code locations of its traceback
when a caller logs ``exc_info``. Records of the standard library's ``logging`` (Snowpark, the
Snowflake connector) go through the same filter and keep their message template without the
interpolated arguments.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any

import structlog

__all__ = [
    "ALLOWED_KEYS",
    "configure_logging",
    "describe_error",
    "error_type_of",
    "exception_frames",
    "filter_allowed_keys",
]

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "owner", "batch_size", "batches", "records",
        "dead_lettered", "outcome", "claimed", "first_seq", "last_seq", "duration_ms",
        "retry_in_seconds", "outages_in_a_row", "prediction_id", "seq", "attempts",
        "error_type", "error_code", "exception_type", "frames", "signal", "host", "port",
        "queue_path", "sink", "store_raw_evidence", "dropped_keys",
    }
)  # fmt: skip
_MAX_STRING = 200
_MAX_LIST = 50
_SCALARS = (str, int, float, bool, type(None))
_ERROR_TYPE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*): ")


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_STRING else value[:_MAX_STRING] + "…"
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, _SCALARS) for v in value[:_MAX_LIST]):
        return [_clip(v) for v in value[:_MAX_LIST]]
    return f"<{type(value).__name__} dropped>"


def filter_allowed_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Keep allow-listed keys with scalar values; name the dropped keys, never their values."""
    dropped = sorted(key for key in event_dict if key not in ALLOWED_KEYS)
    kept = {key: _clip(value) for key, value in event_dict.items() if key in ALLOWED_KEYS}
    if dropped:
        kept["dropped_keys"] = [_clip(key) for key in dropped[:20]]
    return kept


def describe_error(exc: BaseException) -> dict[str, str]:
    """Return the log fields of an error: its type and, when known, the code of its cause.

    The code is SQLite's error name (``SQLITE_FULL``, ``SQLITE_BUSY``) or the type of the
    exception the error was raised from, never a message.
    """
    fields = {"error_type": type(exc).__name__}
    cause = exc.__cause__
    if cause is not None:
        name = getattr(cause, "sqlite_errorname", None)
        fields["error_code"] = name if isinstance(name, str) else type(cause).__name__
    return fields


def error_type_of(error: str) -> str:
    """Return the exception type that starts a stored error text ``"Type: message"``.

    Texts in another form, such as those stored by older versions, give a placeholder, because
    the rest of the text may quote the record.
    """
    match = _ERROR_TYPE.match(error)
    return match.group(1) if match else "(error type unknown; use --show-errors)"


def exception_frames(tb: TracebackType | None) -> list[str]:
    """Return ``file:line function`` for each frame of a traceback, without any message."""
    return [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}"
        for frame in traceback.extract_tb(tb)
    ]


def _summarize_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # The message of an exception may quote a record, so only its type and frames are kept.
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        event_dict["exception_type"] = exc_info[0].__name__
        event_dict["frames"] = exception_frames(exc_info[2])
    event_dict.pop("stack_info", None)
    return event_dict


def _template_only(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # A standard-library record's message is its template filled with arguments, which may be
    # values (a SQL text, a row). The template alone names what happened.
    # A message that is not a string, such as an exception object, is dropped for the same reason.
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        message = record.msg
        event_dict["event"] = (
            message if isinstance(message, str) else f"<{type(message).__name__} dropped>"
        )
        event_dict["logger"] = record.name
    return event_dict


class _SafeJSONRenderer:
    """Render with ``json.dumps``; on any failure emit a minimal line instead of raising."""

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        try:
            return json.dumps(event_dict, default=str, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return json.dumps(
                {"event": "log line could not be rendered", "level": event_dict.get("level")}
            )


def configure_logging(level: str = "INFO") -> None:
    """Render every structlog and standard-library event as filtered JSON on stdout."""
    level_number = logging.getLevelNamesMapping()[level.upper()]
    renderer = _SafeJSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _summarize_exception,
            filter_allowed_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(level_number, renderer)


def _route_stdlib_logging(level_number: int, renderer: _SafeJSONRenderer) -> None:
    """Send standard-library records through the same filters, replacing this module's handler.

    Without a handler, Python's last-resort handler prints warnings and errors of libraries
    (the Snowflake connector, for one) to stderr with their arguments filled in.
    """
    global _stdlib_handler  # one handler per process, replaced on reconfiguration
    handler = _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _template_only,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _summarize_exception,
                filter_allowed_keys,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    # Handlers that others attached (pytest's log capture, for one) keep working.
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
    root.addHandler(handler)
    root.setLevel(level_number)
    _stdlib_handler = handler


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever ``sys.stdout`` is at emit time, so a replaced stdout is followed."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


_stdlib_handler: logging.Handler | None = None
