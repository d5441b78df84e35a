"""structlog set-up for the local model server: JSON lines on stdout through an allow-list of keys.

Request bodies hold feature values, which are health data. Only the keys in ``ALLOWED_KEYS``
reach the output, values must be scalars (or short lists of scalars), and strings are cut to
``_MAX_STRING`` characters. Records of the standard ``logging`` module, such as uvicorn's
"Exception in ASGI application" with its traceback, pass through the same allow-list. Of an
exception only its type is kept, because a traceback or exception message may quote request data.
This mirrors ``evidence_gateway.logs``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["ALLOWED_KEYS", "configure_logging", "filter_allowed_keys"]

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "path", "status", "rows", "body_bytes",
        "duration_ms", "error", "error_kind", "exception_type", "builtin", "warm_up_ms",
        "scoring_threads", "thread_limited_libraries", "artifact_dir", "model_name",
        "model_version", "feature_spec_hash", "model_type", "reason", "trees", "nodes", "depth",
        "max_abs_difference", "probe_rows", "max_rows", "check_ms", "attempt", "circuit_state",
        "host", "port", "pid",
    }
)  # fmt: skip
_MAX_STRING = 200
_MAX_LIST = 50
_SCALARS = (str, int, float, bool, type(None))


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


def _summarize_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # A traceback or exception message may quote request data, so only the type is kept.
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        event_dict["exception_type"] = exc_info[0].__name__
    event_dict.pop("stack_info", None)
    return event_dict


def _render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """Render with ``json.dumps``; on any failure emit a minimal line instead of raising."""
    try:
        return json.dumps(event_dict, default=str, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(
            {"event": "log line could not be rendered", "level": event_dict.get("level")}
        )


def configure_logging(level: str = "info") -> None:
    """Render structlog events and standard-library records as JSON lines on stdout.

    Records below ``level`` are dropped. Log only ids, counts, sizes and durations: feature
    values are health data, and the allow-list drops any other key.
    """
    level_number = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _summarize_exception,
            filter_allowed_keys,
            _render_json,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(level_number)


def _route_stdlib_logging(level_number: int) -> None:
    """Send standard-library records (uvicorn, asyncio) through the allow-list and renderer.

    uvicorn must run with ``log_config=None``, so that its loggers propagate to the root logger
    instead of writing plain-text tracebacks to stderr through handlers of their own.
    """
    global _stdlib_handler  # one handler per process, replaced on reconfiguration
    handler = _StdoutHandler()
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
                _render_json,
            ],
        )
    )
    root = logging.getLogger()
    # Only this module's earlier handler is replaced, so handlers that others attached (pytest's
    # log capture, for one) keep working.
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
