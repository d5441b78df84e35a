"""Writers that follow the current sys.stdout or sys.stderr."""

from __future__ import annotations

import io
import logging

import pytest
from evidence_logging import (
    CurrentStreamHandler,
    CurrentStreamLoggerFactory,
    CurrentStreamPrintLogger,
)


def test_print_logger_follows_replaced_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stdout replaced after the logger was made receives the line."""
    logger = CurrentStreamPrintLogger("stdout")
    replacement = io.StringIO()
    monkeypatch.setattr("sys.stdout", replacement)

    logger.info('{"event": "e"}')

    assert '{"event": "e"}\n' == replacement.getvalue()


def test_print_logger_survives_closed_earlier_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a replaced stream was closed and swapped again, lines go to the new stream."""
    logger = CurrentStreamLoggerFactory("stderr")()
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logger.error("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)

    logger.error("two")

    assert "two\n" == second.getvalue()


def test_handler_follows_replaced_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stdout replaced after the handler was made receives the record."""
    handler = CurrentStreamHandler("stdout")
    replacement = io.StringIO()
    monkeypatch.setattr("sys.stdout", replacement)

    handler.emit(logging.makeLogRecord({"msg": "hello", "levelno": logging.INFO}))

    assert "hello\n" == replacement.getvalue()


def test_handler_follows_replaced_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stderr handler writes to the stderr of the moment, not to stdout."""
    handler = CurrentStreamHandler("stderr")
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)

    handler.emit(logging.makeLogRecord({"msg": "hello"}))

    assert "hello\n" == err.getvalue()
    assert "" == out.getvalue()


@pytest.mark.parametrize(
    "make", [CurrentStreamHandler, CurrentStreamPrintLogger, CurrentStreamLoggerFactory]
)
def test_writers_reject_unknown_stream(make: type) -> None:
    """Only the two standard streams can be followed."""
    with pytest.raises(ValueError, match="stream='stdin' is not a standard stream"):
        make("stdin")
