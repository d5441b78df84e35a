"""structlog set-up for the local model server: JSON lines on stdout through an allow-list of keys.

Request bodies contain feature values, which are health data. Only the keys in
``ALLOWED_KEYS`` reach the output, through the filter of ``evidence_logging``. Values must be
scalars (or short lists of scalars), strings are cut to 200 characters and an exception is
reduced to its type. Records of the standard ``logging`` module, such as uvicorn's "Exception
in ASGI application" with its traceback, pass through the same allow-list.
"""

from __future__ import annotations

import evidence_logging

__all__ = ["ALLOWED_KEYS", "configure_logging", "filter_allowed_keys"]

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "path", "status", "rows", "body_bytes",
        "duration_ms", "error", "error_kind", "exception_type", "builtin", "warm_up_ms",
        "scoring_threads", "thread_limited_libraries", "artifact_dir", "model_name",
        "model_version", "feature_spec_hash", "model_type", "reason", "trees", "nodes", "depth",
        "max_abs_difference", "probe_rows", "max_rows", "check_ms", "attempt", "circuit_state",
        "host", "port", "pid", "inflight_bytes", "inflight_requests", "max_inflight_body_bytes",
        "rejected", "rejected_total", "interval_seconds", "duration_seconds", "content_length",
        "timeout_seconds",
    }
)  # fmt: skip

filter_allowed_keys = evidence_logging.AllowedKeysFilter(ALLOWED_KEYS)
"""The structlog processor that ``configure_logging`` installs, for tests and other chains."""


def configure_logging(level: str = "info") -> None:
    """Render structlog events and standard-library records as JSON lines on stdout.

    Records below ``level`` are dropped. Log only ids, counts, sizes and durations: feature
    values are health data, and the allow-list drops any other key. uvicorn must run with
    ``log_config=None``, so that its loggers propagate to the root logger instead of writing
    plain-text tracebacks to stderr through handlers of their own.
    """
    evidence_logging.configure_logging(
        ALLOWED_KEYS,
        level=level,
        stream="stdout",
        # The client's modules also log inside the gateway, and tests configure both in one
        # process. A logger cached under this set-up would ignore every later one.
        cache_logger_on_first_use=False,
    )
