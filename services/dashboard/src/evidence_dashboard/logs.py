"""structlog set-up for the dashboard process: JSON lines on stderr, configured once."""

from __future__ import annotations

import logging
import sys
from functools import lru_cache

import structlog

__all__ = ["configure_logging"]


@lru_cache(maxsize=1)
def configure_logging(level: int = logging.INFO) -> None:
    """Configure structlog once per process; later calls do nothing."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
