"""Logging for the dashboard process: JSON lines on stderr that never carry health data.

The dashboard reads stored predictions and sends test evidence to the gateway, so an exception
message can quote a policy number, a stored value or XML from the test form. Three rules keep
such text out of the process output:

- structlog events keep only the keys in ``ALLOWED_KEYS``, with scalar values cut to
  ``_MAX_STRING`` characters, and an exception is reduced to its type (``exception_type``).
- Standard-library records of other libraries (httpx, for one) go through the same processors.
- Streamlit's own loggers, which do not propagate to the root logger, get a filter that drops
  the traceback and exception message of every record. Streamlit's rich tracebacks, which
  bypass logging, are switched off.

The page sections also catch their own errors (``evidence_dashboard.sections``), so an
uncaught exception reaches Streamlit's handler only through a bug in that guard.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any

import streamlit as st
import structlog

__all__ = [
    "ALLOWED_KEYS",
    "configure_logging",
    "filter_allowed_keys",
    "redact_streamlit_loggers",
]

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "section", "url", "service", "function",
        "error", "exception_type", "duration_ms", "rows", "http_status",
    }
)  # fmt: skip
_MAX_STRING = 200
_SCALARS = (str, int, float, bool, type(None))


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_STRING else value[:_MAX_STRING] + "…"
    if isinstance(value, _SCALARS):
        return value
    return f"<{type(value).__name__} dropped>"


def _summarize_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace ``exc_info`` by the exception's type name, because its message may quote data."""
    exc_info = event_dict.pop("exc_info", None)
    event_dict.pop("exception", None)
    exception: BaseException | None = None
    if isinstance(exc_info, BaseException):
        exception = exc_info
    elif isinstance(exc_info, tuple) and isinstance(exc_info[1], BaseException):
        exception = exc_info[1]
    elif exc_info is True:
        exception = sys.exc_info()[1]
    if exception is not None:
        event_dict["exception_type"] = type(exception).__name__
    return event_dict


def filter_allowed_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Keep allow-listed keys with scalar values, and name the dropped keys but not their values."""
    dropped = sorted(str(key) for key in event_dict if key not in ALLOWED_KEYS)
    allowed = {key: _clip(value) for key, value in event_dict.items() if key in ALLOWED_KEYS}
    if dropped:
        allowed["dropped_keys"] = [_clip(key) for key in dropped[:20]]
    return allowed


class _SafeJSONRenderer:
    """Render with ``json.dumps``, or emit a minimal line when that fails, never raising."""

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        try:
            return json.dumps(event_dict, default=str, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return json.dumps(
                {"event": "log line could not be rendered", "level": event_dict.get("level")}
            )


class _ExceptionTypeOnlyFilter(logging.Filter):
    """Drop the traceback and message of a record's exception, keeping the exception type."""

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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever ``sys.stderr`` is at emit time, so a replaced stderr is followed."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_REDACTION_FILTER = _ExceptionTypeOnlyFilter()


def redact_streamlit_loggers() -> None:
    """Add the exception filter to every ``streamlit`` logger that exists so far.

    Streamlit creates its loggers lazily, as its modules are imported, and gives each one its
    own handler. The page calls this on every run, so loggers created after the first run get
    the filter too. Adding the same filter twice has no effect.
    """
    manager = logging.Logger.manager
    names = [name for name in list(manager.loggerDict) if name.split(".")[0] == "streamlit"]
    # Streamlit logs uncaught app exceptions on this logger, so it gets the filter before use.
    names.append("streamlit.error_util")
    for name in names:
        logging.getLogger(name).addFilter(_REDACTION_FILTER)


@lru_cache(maxsize=1)
def configure_logging(level: int = logging.INFO) -> None:
    """Configure structlog and the standard-library root logger once per process."""
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
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Other libraries log at WARNING and above, as by Python's default. The INFO line that httpx
    # writes per request would only repeat the gateway URL.
    handler = _StderrHandler(logging.WARNING)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _summarize_exception,
                filter_allowed_keys,
                renderer,
            ],
        )
    )
    logging.getLogger().addHandler(handler)
    # Rich tracebacks of uncaught app exceptions are printed straight to the console, outside
    # the logging filters, so Streamlit must use its logger instead.
    st.set_option("logger.enableRich", False)
