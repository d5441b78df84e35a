"""Logging for the dashboard process: JSON lines on stderr that never carry health data.

The dashboard reads stored predictions and sends test evidence to the gateway, so an exception
message can quote a policy number, a stored value or XML from the test form. Three rules keep
such text out of the process output, all applied through ``evidence_logging``:

- structlog events keep only the keys in ``ALLOWED_KEYS``, with scalar values cut to 200
  characters, list values dropped, and an exception reduced to its type (``exception_type``).
- Standard-library records of other libraries (httpx, for one) go through the same processors.
- Streamlit's own loggers, which do not propagate to the root logger, get a filter that drops
  the traceback and exception message of every record. Streamlit's rich tracebacks, which
  bypass logging, are switched off.

The page sections also catch their own errors (``evidence_dashboard.sections``), so an
uncaught exception reaches Streamlit's handler only through a bug in that guard.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import evidence_logging
import streamlit as st

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
# No dashboard event logs a list, so list values are dropped like nested ones.
_MAX_LIST_ITEMS = 0
# Streamlit logs uncaught app exceptions on "streamlit.error_util", so that logger gets the
# filter before Streamlit first uses it.
_STREAMLIT_LOGGERS = ("streamlit", "streamlit.error_util")

filter_allowed_keys = evidence_logging.AllowedKeysFilter(
    ALLOWED_KEYS, max_list_items=_MAX_LIST_ITEMS
)
"""The structlog processor that ``configure_logging`` installs, for tests and other chains."""


def redact_streamlit_loggers() -> None:
    """Add the exception filter to every ``streamlit`` logger that exists so far.

    Streamlit creates its loggers lazily, as its modules are imported, and gives each one its
    own handler. The page calls this on every run, so loggers created after the first run get
    the filter too. Adding the same filter twice has no effect.
    """
    evidence_logging.redact_loggers(_STREAMLIT_LOGGERS)


@lru_cache(maxsize=1)
def configure_logging(level: int = logging.INFO) -> None:
    """Configure structlog and the standard-library root logger once per process."""
    evidence_logging.configure_logging(
        ALLOWED_KEYS,
        level=level,
        stream="stderr",
        # Other libraries log at WARNING and above, as by Python's default. The INFO line that
        # httpx writes per request would only repeat the gateway URL.
        stdlib_level=logging.WARNING,
        max_list_items=_MAX_LIST_ITEMS,
        extra_loggers=_STREAMLIT_LOGGERS,
    )
    # Rich tracebacks of uncaught app exceptions are printed straight to the console, outside
    # the logging filters, so Streamlit must use its logger instead.
    st.set_option("logger.enableRich", False)
