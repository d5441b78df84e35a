"""structlog set-up: JSON lines, an allow-list of keys, and a renderer that never raises.

The gateway handles health data. Only the keys in ``ALLOWED_KEYS`` reach the output, values
must be scalars and strings are cut to ``_MAX_STRING``, so a stray ``log.info(..., doc=xml)``
cannot leak a document or make the call raise on a deeply nested value.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

__all__ = ["ALLOWED_KEYS", "configure_logging", "filter_allowed_keys"]

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "request_id", "method", "path", "route",
        "status", "duration_ms", "bytes_in", "rows", "scored", "failed", "fallbacks",
        "model_version", "query_batch_id", "query_id", "prediction_ids", "source", "error_type",
        "error", "document", "exception_type", "queue_depth", "executor", "workers", "port",
        "host", "circuit_state", "feature_spec_version", "pid", "field_paths", "error_kind",
        "builtin", "attempt", "served_hash", "expected_hash",
    }
)  # fmt: skip
_MAX_STRING = 200
_SCALARS = (str, int, float, bool, type(None))


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_STRING else value[:_MAX_STRING] + "…"
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, _SCALARS) for v in value[:50]):
        return [_clip(v) for v in value[:50]]
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


class _SafeJSONRenderer:
    """Render with ``json.dumps``; on any failure emit a minimal line instead of raising."""

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        try:
            return json.dumps(event_dict, default=str, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return json.dumps(
                {"event": "log line could not be rendered", "level": event_dict.get("level")}
            )


def configure_logging(
    fmt: Literal["json", "console"], level: Literal["debug", "info", "warning", "error"]
) -> None:
    """Configure structlog for this process; call once from the app factory or a CLI."""
    renderer: Any = (
        _SafeJSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            filter_allowed_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(logging.getLevelNamesMapping()[level.upper()], renderer)


def _summarize_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # A traceback or exception message may quote request data, so only the type is kept.
    exc_info = event_dict.pop("exc_info", None)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        event_dict["exception_type"] = exc_info[0].__name__
    return event_dict


def _route_stdlib_logging(level_number: int, renderer: Any) -> None:
    """Send standard-library records (uvicorn, httpx) through the same allow-list and renderer.

    Without this, uvicorn's "Exception in ASGI application" goes to stderr as a plain-text
    traceback, outside the JSON lines and the allow-list.
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
                renderer,
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
