"""Routing of standard-library log records through the same processors as structlog events.

Without a handler on the root logger, uvicorn's "Exception in ASGI application", asyncio's
errors or the Snowflake connector's warnings reach stderr as plain text with their tracebacks
and arguments, outside the allow-list. uvicorn must run with ``log_config=None`` so that its
loggers propagate to the root logger instead of writing through handlers of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from evidence_logging._streams import CurrentStreamHandler, StreamName


class _RoutingHandler(CurrentStreamHandler):
    """The root handler this module installs; its class marks it for removal on reconfiguration."""


def keep_message_template(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Set ``event`` to a standard-library record's message template, without its arguments.

    Also sets ``logger`` to the record's logger name. The arguments may be values (a SQL text,
    a row), and a message that is not a string, such as an exception, becomes
    ``"<type dropped>"`` for the same reason.

    NOTE: a logger filter that runs before the handlers and fills the arguments into the
    message defeats this step. snowflake-connector-python 4.8 adds such a filter
    (``SecretMaskingFilter``) to the ``snowflake.connector`` loggers once it is imported, unless
    ``SNOWFLAKE_DISABLE_LOG_SECRET_MASKING=true``. Their lines then carry the filled-in message,
    clipped to 200 characters.
    """
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        message = record.msg
        event_dict["event"] = (
            message if isinstance(message, str) else f"<{type(message).__name__} dropped>"
        )
        event_dict["logger"] = record.name
    return event_dict


def route_stdlib_logging(
    processors: Sequence[Processor],
    *,
    level: int,
    stream: StreamName = "stdout",
    template_only: bool = False,
) -> logging.Handler:
    """Install a root handler that renders standard-library records through ``processors``.

    The handler that an earlier call installed is removed first, so a process has one. Handlers
    that others attached (pytest's log capture, for one) stay.

    Args:
        processors: The chain after level and timestamp, ending in the renderer.
        level: Level of the root logger and of the handler.
        stream: The standard stream to write to, looked up at each record.
        template_only: Log the message template without its arguments, plus the logger name.

    Returns:
        The installed handler.
    """
    pre_chain: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if template_only:
        pre_chain.append(keep_message_template)
    handler = _RoutingHandler(stream, level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *processors],
            # With the template only, the formatter does not fill in the arguments, so a template
            # that does not match its arguments cannot make formatting fail.
            use_get_message=not template_only,
        )
    )
    root = logging.getLogger()
    # Every handler of an earlier call goes, found by class rather than remembered, so one that
    # a test fixture put back is not doubled. Handlers others attached (pytest's log capture,
    # for one) stay.
    for earlier in [h for h in root.handlers if isinstance(h, _RoutingHandler)]:
        root.removeHandler(earlier)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
