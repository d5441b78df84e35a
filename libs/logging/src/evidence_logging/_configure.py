"""The one entry point a service calls at start-up to configure structlog and the root logger."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Literal

import structlog
from structlog.typing import Processor

from evidence_logging._exceptions import ExceptionSummarizer
from evidence_logging._redact import redact_loggers
from evidence_logging._render import SafeJSONRenderer
from evidence_logging._stdlib import route_stdlib_logging
from evidence_logging._streams import CurrentStreamLoggerFactory, StreamName
from evidence_logging._values import MAX_LIST_ITEMS, AllowedKeysFilter

# uvicorn.access is left alone: the services log one summary line per request themselves, and
# uvicorn's access_log=False turns it off by giving it no handler and no propagation.
ADOPTED_LOGGERS = ("uvicorn", "uvicorn.error")
# httpx and httpcore log every request at INFO with its full URL, and a URL may carry
# credentials (http://user:password@host). Their warnings and errors still come through.
QUIETED_LOGGERS = ("httpx", "httpcore")


def resolve_level(level: int | str) -> int:
    """Return the number of a logging level given as a number or a name in any case."""
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        msg = f"unknown log level {level!r}; use debug, info, warning, error or critical"
        raise ValueError(msg)
    return number


def configure_logging(
    allowed_keys: Collection[str],
    *,
    level: int | str = logging.INFO,
    stream: StreamName = "stdout",
    extra_loggers: Iterable[str] = (),
    adopt_loggers: Iterable[str] = ADOPTED_LOGGERS,
    stdlib_level: int | str | None = None,
    renderer: Literal["json", "console"] = "json",
    max_list_items: int = MAX_LIST_ITEMS,
    include_frames: bool = False,
    stdlib_template_only: bool = False,
    cache_logger_on_first_use: bool = False,
) -> None:
    """Configure structlog and the root logger of this process to log through one filter.

    Each structlog event and each standard-library record gets a level and an ISO UTC
    timestamp, has any exception reduced to its type, keeps only ``allowed_keys`` with clipped
    values, and is rendered as one JSON line. Calling it again replaces the earlier set-up.

    Args:
        allowed_keys: The keys the service may log; others are named in ``dropped_keys``.
        level: Lowest level of structlog events, as a number or a name such as ``"info"``.
        stream: Standard stream both kinds of lines go to, looked up at each line.
        extra_loggers: Loggers that do not propagate to the root logger; they and the loggers
            below them that exist so far get ``ExceptionTypeOnlyFilter`` (see ``redact_loggers``).
        adopt_loggers: Loggers whose own handlers are removed and which propagate to the root
            logger again. uvicorn's logging set-up, or a library that applies it (Streamlit),
            gives ``uvicorn`` and ``uvicorn.error`` plain-text handlers with ``propagate``
            off, which would print tracebacks outside the filter.
        stdlib_level: Lowest level of standard-library records; defaults to ``level``.
        renderer: ``"json"`` for JSON lines, or ``"console"`` for structlog's plain-text
            console renderer without colours, for a terminal.
        max_list_items: Items kept of a list value; 0 drops list values.
        include_frames: Add ``frames`` (``file:line function`` of each traceback frame) to
            events with an exception. ``allowed_keys`` must contain ``"frames"`` to keep them.
        stdlib_template_only: Log a standard-library record's message template without its
            arguments, plus ``logger``, the logger's name.
        cache_logger_on_first_use: Passed to ``structlog.configure``. With ``True`` a logger
            keeps the configuration of its first use for good. The default is ``False``,
            because shared modules (the model client, the feature library) log in several
            processes, and a test process that configures more than one service would leave
            their loggers on whichever set-up came first.

    Raises:
        ValueError: An unknown level, stream or renderer name, or a negative ``max_list_items``.
        TypeError: ``allowed_keys`` or ``extra_loggers`` is a single string.
    """
    level_number = resolve_level(level)
    stdlib_level_number = level_number if stdlib_level is None else resolve_level(stdlib_level)
    logger_factory = CurrentStreamLoggerFactory(stream)
    for name, value in (("extra_loggers", extra_loggers), ("adopt_loggers", adopt_loggers)):
        if isinstance(value, str):
            msg = f"{name}={value!r} is one string; pass a collection of logger names"
            raise TypeError(msg)
    if renderer not in ("json", "console"):
        msg = f"renderer={renderer!r} is not a renderer; use 'json' or 'console'"
        raise ValueError(msg)

    final: Processor = (
        SafeJSONRenderer() if renderer == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Processor] = [
        ExceptionSummarizer(include_frames=include_frames),
        AllowedKeysFilter(allowed_keys, max_list_items=max_list_items),
        final,
    ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *shared,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=logger_factory,
        cache_logger_on_first_use=cache_logger_on_first_use,
    )
    route_stdlib_logging(
        shared, level=stdlib_level_number, stream=stream, template_only=stdlib_template_only
    )
    for name in adopt_loggers:
        adopted = logging.getLogger(name)
        for handler in list(adopted.handlers):
            adopted.removeHandler(handler)
        adopted.propagate = True
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, stdlib_level_number))
    redact_loggers(extra_loggers)
