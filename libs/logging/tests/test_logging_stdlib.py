"""The root handler that renders standard-library records through the structlog processors."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from evidence_logging import (
    AllowedKeysFilter,
    CurrentStreamHandler,
    ExceptionSummarizer,
    SafeJSONRenderer,
    keep_message_template,
    route_stdlib_logging,
)
from structlog.typing import Processor

CANARY = "CANARY-OXYCODONE-311C"


def _chain() -> list[Processor]:
    return [
        ExceptionSummarizer(),
        AllowedKeysFilter({"event", "level", "timestamp", "logger", "exception_type"}),
        SafeJSONRenderer(),
    ]


def _logger() -> logging.Logger:
    return logging.getLogger(f"evidence_logging_test.{uuid.uuid4().hex}")


def _isolated_logger(handler: logging.Handler) -> logging.Logger:
    # pytest's own capture handler on the root logger raises on a template that does not fit
    # its arguments, so these records reach only the handler under test.
    logger = _logger()
    logger.propagate = False
    logger.addHandler(handler)
    return logger


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_route_renders_stdlib_exception_as_type(capsys: pytest.CaptureFixture[str]) -> None:
    """A stdlib record with a traceback becomes one JSON line with the type and no message."""
    route_stdlib_logging(_chain(), level=logging.INFO)

    try:
        raise ValueError(CANARY)
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "Exception in ASGI application" == line["event"]
    assert "ValueError" == line["exception_type"]
    assert "error" == line["level"]
    assert isinstance(line["timestamp"], str)
    assert CANARY not in output.out + output.err
    assert "Traceback" not in output.out + output.err


def test_route_interpolates_arguments_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Without template_only the message has its arguments filled in."""
    route_stdlib_logging(_chain(), level=logging.INFO)

    _logger().warning("served %d rows", 3)

    (line,) = _json_lines(capsys.readouterr().out)
    assert "served 3 rows" == line["event"]
    assert "logger" not in line


def test_route_template_only_keeps_template_and_logger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With template_only the arguments never appear, and the logger is named."""
    route_stdlib_logging(_chain(), level=logging.INFO, template_only=True)
    logger = _logger()

    logger.warning("statement failed for %s", CANARY)

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "statement failed for %s" == line["event"]
    assert logger.name == line["logger"]
    assert CANARY not in output.out + output.err


def test_route_template_only_survives_mismatched_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A template with too few placeholders is logged as its template, with no error."""
    handler = route_stdlib_logging(_chain(), level=logging.INFO, template_only=True)

    _isolated_logger(handler).error("failed", CANARY)

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "failed" == line["event"]
    assert "" == output.err


def test_route_formatting_error_hides_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """A record whose arguments do not fit its template logs a typed line, not the arguments."""
    handler = route_stdlib_logging(_chain(), level=logging.INFO)
    logger = _isolated_logger(handler)

    logger.error("failed %s %s", CANARY)

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "log record could not be rendered" == line["event"]
    assert "TypeError" == line["exception_type"]
    assert logger.name == line["logger"]
    assert CANARY not in output.out + output.err


def test_keep_message_template_drops_non_string_message() -> None:
    """A message that is an object, such as an exception, becomes a type placeholder."""
    record = logging.makeLogRecord({"name": "lib", "msg": ValueError(CANARY)})

    event = keep_message_template(None, "error", {"event": str(record.msg), "_record": record})

    assert "<ValueError dropped>" == event["event"]
    assert "lib" == event["logger"]


def test_keep_message_template_ignores_events_without_record() -> None:
    """A structlog event, which has no stdlib record, passes unchanged."""
    assert {"event": "e"} == keep_message_template(None, "info", {"event": "e"})


def test_route_level_drops_lower_records(capsys: pytest.CaptureFixture[str]) -> None:
    """At level warning, info records are dropped and errors kept."""
    route_stdlib_logging(_chain(), level=logging.WARNING)
    logger = _logger()

    logger.info("Started server process")
    logger.error("boom")

    assert ["boom"] == [line["event"] for line in _json_lines(capsys.readouterr().out)]


def test_route_replaces_only_its_own_handler() -> None:
    """A second call removes the first handler and leaves other root handlers in place."""
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)

    first = route_stdlib_logging(_chain(), level=logging.INFO)
    second = route_stdlib_logging(_chain(), level=logging.INFO)

    assert first not in root.handlers
    assert second in root.handlers
    assert other in root.handlers
    assert 1 == sum(isinstance(handler, CurrentStreamHandler) for handler in root.handlers)
