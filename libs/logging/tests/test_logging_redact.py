"""The exception filter for loggers that write through handlers of their own."""

from __future__ import annotations

import io
import logging
import sys
import uuid
from collections.abc import Iterator

import pytest
from evidence_logging import ExceptionTypeOnlyFilter, redact_loggers

CANARY = "CANARY-311C-P9931"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh top-level logger name; the filters added below it are removed afterwards."""
    name = f"redacttest{uuid.uuid4().hex}"
    yield name
    for logger_name in list(logging.Logger.manager.loggerDict):
        if logger_name == name or logger_name.startswith(name):
            logger = logging.getLogger(logger_name)
            for log_filter in list(logger.filters):
                logger.removeFilter(log_filter)


def _record_with_exception(msg: str, args: tuple[object, ...] = ()) -> logging.LogRecord:
    try:
        raise ValueError(CANARY)
    except ValueError:
        exc_info = sys.exc_info()
    return logging.makeLogRecord(
        {"msg": msg, "args": args, "exc_info": exc_info, "stack_info": "Stack: ..."}
    )


def test_filter_replaces_exception_by_type() -> None:
    """The traceback and message go, and the message names the type."""
    record = _record_with_exception("Uncaught app execution")

    assert ExceptionTypeOnlyFilter().filter(record)

    assert "Uncaught app execution (ValueError, message removed)" == record.getMessage()
    assert record.exc_info is None
    assert record.exc_text is None
    assert record.stack_info is None


def test_filter_bad_template_keeps_raw_message() -> None:
    """A template that does not fit its arguments is kept unformatted, without the arguments."""
    record = _record_with_exception("failed %s %s", (CANARY,))

    ExceptionTypeOnlyFilter().filter(record)

    assert "failed %s %s (ValueError, message removed)" == record.getMessage()


def test_filter_record_without_exception_unchanged() -> None:
    """A record without an exception keeps its message and loses only its stack."""
    record = logging.makeLogRecord({"msg": "served %d", "args": (3,), "stack_info": "Stack"})

    ExceptionTypeOnlyFilter().filter(record)

    assert "served 3" == record.getMessage()
    assert record.stack_info is None


def test_redact_covers_existing_children_only_below_prefix(prefix: str) -> None:
    """The named logger and its existing children get the filter; a look-alike name does not."""
    child = logging.getLogger(f"{prefix}.runtime.app")
    look_alike = logging.getLogger(f"{prefix}x")

    names = redact_loggers([prefix])

    assert [prefix, f"{prefix}.runtime", f"{prefix}.runtime.app"] == names
    assert any(isinstance(f, ExceptionTypeOnlyFilter) for f in child.filters)
    assert not look_alike.filters


def test_redact_creates_named_logger(prefix: str) -> None:
    """A named logger that does not exist yet is created with the filter."""
    name = f"{prefix}.error_util"

    redact_loggers([name])

    assert any(isinstance(f, ExceptionTypeOnlyFilter) for f in logging.getLogger(name).filters)


def test_redact_twice_adds_filter_once(prefix: str) -> None:
    """Calling it again, as a page does on every run, adds no second filter."""
    logger = logging.getLogger(f"{prefix}.a")

    redact_loggers([prefix])
    redact_loggers([prefix])

    assert 1 == len(logger.filters)


def test_redact_non_propagating_logger_prints_no_message(prefix: str) -> None:
    """A logger with its own handler, as Streamlit's, prints the type but not the message."""
    logger = logging.getLogger(f"{prefix}.error_util")
    logger.propagate = False
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    redact_loggers([prefix])

    try:
        raise ValueError(CANARY)
    except ValueError:
        logger.exception("Uncaught app execution")

    assert "Uncaught app execution (ValueError, message removed)\n" == stream.getvalue()


def test_redact_rejects_single_string() -> None:
    """One string would be read as single-letter logger names, so it is rejected."""
    with pytest.raises(TypeError, match="names='streamlit' is one string"):
        redact_loggers("streamlit")
