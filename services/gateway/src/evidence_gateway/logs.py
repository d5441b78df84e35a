"""structlog set-up: JSON lines, an allow-list of keys, and a renderer that never raises.

The gateway handles health data. Only the keys in ``ALLOWED_KEYS`` reach the output, through
the filter of ``evidence_logging``: values must be scalars and strings are cut to 200
characters, so a stray ``log.info(..., doc=xml)`` cannot leak a document or make the call raise
on a deeply nested value. Standard-library records, such as uvicorn's "Exception in ASGI
application" with its traceback, pass through the same filter with the exception reduced to
its type.
"""

from __future__ import annotations

from typing import Literal

import evidence_logging

__all__ = ["ALLOWED_KEYS", "configure_logging", "filter_allowed_keys"]

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "request_id", "method", "path", "route",
        "status", "duration_ms", "bytes_in", "rows", "scored", "failed", "fallbacks",
        "model_version", "query_batch_id", "query_id", "prediction_ids", "source", "error_type",
        "error", "document", "exception_type", "queue_depth", "executor", "workers", "port",
        "host", "circuit_state", "feature_spec_version", "pid", "field_paths", "error_kind",
        "builtin", "attempt", "served_hash", "expected_hash", "query_batch_id_digest",
        "query_batch_id_length", "query_id_digest", "query_id_length", "pool", "parsed_bytes",
        "queued", "pending_bytes", "write_timeout_seconds", "gil_switch_interval_ms",
        "queue_synchronous", "request_ids", "request_count", "slot", "waited_seconds",
        "queue_path", "reason", "action", "fix",
    }
)  # fmt: skip
filter_allowed_keys = evidence_logging.AllowedKeysFilter(ALLOWED_KEYS)
"""The structlog processor that ``configure_logging`` installs, for tests and other chains."""


def configure_logging(
    fmt: Literal["json", "console"], level: Literal["debug", "info", "warning", "error"]
) -> None:
    """Configure structlog and the root logger for this process; call once from the app or CLI."""
    evidence_logging.configure_logging(
        ALLOWED_KEYS,
        level=level,
        stream="stdout",
        renderer=fmt,
        # The app factory runs again in tests, and each run must take the new set-up.
        cache_logger_on_first_use=False,
    )
