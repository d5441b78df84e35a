"""configure_logging: structlog events and stdlib records through one filter to one stream."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid

import pytest
import structlog
from evidence_logging import (
    CurrentStreamHandler,
    ExceptionTypeOnlyFilter,
    configure_logging,
    resolve_level,
)

CANARY = "CANARY-JANE-EXAMPLE"
KEYS = frozenset({"event", "level", "timestamp", "logger", "rows", "exception_type", "request_id"})


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_configure_structlog_event_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """An event becomes one JSON line with level, UTC timestamp and allowed keys only."""
    configure_logging(KEYS)

    structlog.get_logger("test").info("prediction served", rows=1, body=CANARY)

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "prediction served" == line["event"]
    assert "info" == line["level"]
    assert 1 == line["rows"]
    assert ["body"] == line["dropped_keys"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", str(line["timestamp"]))
    assert CANARY not in output.out + output.err


def test_configure_follows_stream_replaced_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines go to the stdout of the moment, even after the one at set-up was closed."""
    at_setup = io.StringIO()
    monkeypatch.setattr("sys.stdout", at_setup)
    configure_logging(KEYS)
    at_setup.close()
    later = io.StringIO()
    monkeypatch.setattr("sys.stdout", later)

    structlog.get_logger("test").info("from structlog")
    logging.getLogger("some_library").warning("from stdlib")

    assert ["from structlog", "from stdlib"] == [
        line["event"] for line in _json_lines(later.getvalue())
    ]


def test_configure_merges_context_variables(capsys: pytest.CaptureFixture[str]) -> None:
    """Bound context variables reach the line when their key is allowed."""
    configure_logging(KEYS)
    structlog.contextvars.bind_contextvars(request_id="r-7", policy_number=CANARY)
    try:
        structlog.get_logger("test").info("request done")
    finally:
        structlog.contextvars.clear_contextvars()

    (line,) = _json_lines(capsys.readouterr().out)
    assert "r-7" == line["request_id"]
    assert ["policy_number"] == line["dropped_keys"]


def test_configure_structlog_exception_keeps_type(capsys: pytest.CaptureFixture[str]) -> None:
    """structlog's exception() keeps only the exception type."""
    configure_logging(KEYS)

    try:
        raise KeyError(CANARY)
    except KeyError:
        structlog.get_logger("test").exception("scoring failed", rows=3)

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "KeyError" == line["exception_type"]
    assert "error" == line["level"]
    assert "dropped_keys" not in line
    assert CANARY not in output.out + output.err


def test_configure_stdlib_exception_keeps_type(capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn's "Exception in ASGI application" becomes a typed line without its message."""
    configure_logging(KEYS, level="info")

    try:
        raise ValueError(CANARY)
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "Exception in ASGI application" == line["event"]
    assert "ValueError" == line["exception_type"]
    assert CANARY not in output.out + output.err


def test_configure_stderr_stream(capsys: pytest.CaptureFixture[str]) -> None:
    """With stream='stderr' both kinds of lines go to stderr and none to stdout."""
    configure_logging(KEYS, stream="stderr")

    structlog.get_logger("test").warning("from structlog")
    logging.getLogger("some_library").warning("from stdlib")

    output = capsys.readouterr()
    assert "" == output.out
    assert ["from structlog", "from stdlib"] == [line["event"] for line in _json_lines(output.err)]


def test_configure_level_drops_lower_events(capsys: pytest.CaptureFixture[str]) -> None:
    """At level warning, info events of both kinds are dropped and warnings kept."""
    configure_logging(KEYS, level="WARNING")

    structlog.get_logger("test").info("structlog info")
    structlog.get_logger("test").warning("structlog warning")
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("uvicorn.error").error("boom")

    events = [line["event"] for line in _json_lines(capsys.readouterr().out)]
    assert ["structlog warning", "boom"] == events


def test_configure_separate_stdlib_level(capsys: pytest.CaptureFixture[str]) -> None:
    """stdlib_level raises the bar for library records only."""
    configure_logging(KEYS, level=logging.INFO, stdlib_level=logging.WARNING)

    structlog.get_logger("test").info("structlog info")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1")
    logging.getLogger("httpx").warning("library warning")

    events = [line["event"] for line in _json_lines(capsys.readouterr().out)]
    assert ["structlog info", "library warning"] == events


def test_configure_frames_when_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    """include_frames adds the frame locations of an exception, which the allow-list keeps."""
    configure_logging(KEYS | {"frames"}, include_frames=True)

    try:
        raise RuntimeError(CANARY)
    except RuntimeError:
        structlog.get_logger("test").exception("worker failed")

    (line,) = _json_lines(capsys.readouterr().out)
    assert isinstance(line["frames"], list)
    assert 1 == len(line["frames"])
    assert str(line["frames"][0]).endswith(" test_configure_frames_when_allowed")


def test_configure_template_only(capsys: pytest.CaptureFixture[str]) -> None:
    """stdlib_template_only keeps a library record's arguments out and names its logger."""
    configure_logging(KEYS, stdlib_template_only=True)

    # Not a snowflake.connector logger: the connector's own filter fills in the arguments.
    logging.getLogger("some_driver.cursor").error("statement failed for %s", CANARY)

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "statement failed for %s" == line["event"]
    assert "some_driver.cursor" == line["logger"]
    assert CANARY not in output.out + output.err


def test_configure_zero_list_items(capsys: pytest.CaptureFixture[str]) -> None:
    """max_list_items=0 drops list values in the configured chain."""
    configure_logging(KEYS, max_list_items=0)

    structlog.get_logger("test").info("e", rows=[1, 2])

    (line,) = _json_lines(capsys.readouterr().out)
    assert "<list dropped>" == line["rows"]


def test_configure_console_renderer(capsys: pytest.CaptureFixture[str]) -> None:
    """The console renderer writes plain text through the same allow-list."""
    configure_logging(KEYS, renderer="console")

    structlog.get_logger("test").info("prediction served", rows=1, body=CANARY)

    output = capsys.readouterr().out
    assert "prediction served" in output
    assert "rows=1" in output
    assert CANARY not in output
    assert not output.startswith("{")


def test_configure_deep_value_does_not_raise(capsys: pytest.CaptureFixture[str]) -> None:
    """A value nested 5000 levels deep neither raises nor reaches the output."""
    configure_logging(KEYS)
    deep: dict[str, object] = {}
    node = deep
    for _ in range(5000):
        child: dict[str, object] = {}
        node["a"] = child
        node = child

    structlog.get_logger("test").info("deep value", rows=deep, request_id="r-deep")

    (line,) = _json_lines(capsys.readouterr().out)
    assert "r-deep" == line["request_id"]
    assert "<dict dropped>" == line["rows"]


def test_configure_redacts_extra_loggers() -> None:
    """The extra loggers get the exception-type-only filter."""
    name = f"extralib{uuid.uuid4().hex}"
    logger = logging.getLogger(f"{name}.child")

    configure_logging(KEYS, extra_loggers=[name])

    assert any(isinstance(f, ExceptionTypeOnlyFilter) for f in logger.filters)


def test_configure_twice_keeps_one_handler() -> None:
    """Reconfiguring replaces the root handler instead of adding a second one."""
    configure_logging(KEYS)
    configure_logging(KEYS, level="debug")

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, CurrentStreamHandler)]
    assert 1 == len(handlers)
    assert logging.DEBUG == logging.getLogger().level


def test_configure_rejects_unknown_level() -> None:
    """An unknown level name is named in the error, with the accepted names."""
    with pytest.raises(ValueError, match="unknown log level 'loud'; use debug, info"):
        configure_logging(KEYS, level="loud")


def test_configure_rejects_unknown_stream() -> None:
    """A stream other than stdout or stderr is rejected before anything is configured."""
    with pytest.raises(ValueError, match="stream='stdin' is not a standard stream"):
        configure_logging(KEYS, stream="stdin")  # type: ignore[arg-type]


def test_configure_rejects_unknown_renderer() -> None:
    """A renderer other than json or console is rejected instead of falling back to one."""
    with pytest.raises(ValueError, match="renderer='xml' is not a renderer"):
        configure_logging(KEYS, renderer="xml")  # type: ignore[arg-type]


def test_configure_rejects_single_string_loggers() -> None:
    """One string as extra_loggers is rejected, since it would be read letter by letter."""
    with pytest.raises(TypeError, match="extra_loggers='streamlit' is one string"):
        configure_logging(KEYS, extra_loggers="streamlit")


@pytest.mark.parametrize(
    ("level", "expected"),
    [("debug", 10), ("INFO", 20), ("Warning", 30), ("error", 40), (25, 25)],
)
def test_resolve_level_names_and_numbers(level: int | str, expected: int) -> None:
    """Level names in any case and plain numbers resolve to the logging number."""
    assert expected == resolve_level(level)


def test_configure_replaces_handler_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler of an earlier set-up that a fixture restored is replaced, not doubled."""
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    configure_logging(KEYS)
    earlier = list(logging.getLogger().handlers)
    configure_logging(KEYS)
    logging.getLogger().handlers[:] = earlier
    configure_logging(KEYS)

    logging.getLogger("some_library").warning("once")

    assert ["once"] == [line["event"] for line in _json_lines(out.getvalue())]


def test_configure_adopts_uvicorn_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    """A uvicorn logger left with its own handler and no propagation logs through the filter."""
    error_logger = logging.getLogger("uvicorn.error")
    plain = logging.StreamHandler()
    error_logger.addHandler(plain)
    error_logger.propagate = False
    try:
        configure_logging(KEYS)
        try:
            raise ValueError(CANARY)
        except ValueError:
            error_logger.exception("Exception in ASGI application")
    finally:
        error_logger.removeHandler(plain)
        error_logger.propagate = True

    output = capsys.readouterr()
    (line,) = _json_lines(output.out)
    assert "ValueError" == line["exception_type"]
    assert plain not in error_logger.handlers
    assert CANARY not in output.out + output.err


@pytest.mark.parametrize("logger_name", ["httpx", "httpcore.connection"])
def test_configure_quiets_http_client_info(
    capsys: pytest.CaptureFixture[str], logger_name: str
) -> None:
    """httpx's request lines, which carry URLs with any credentials, stay out at INFO and DEBUG."""
    configure_logging(KEYS, level="debug")
    url = "http://svc:Pa55w0rd@127.0.0.1:5000/predict"

    logging.getLogger(logger_name).info("HTTP Request: POST %s", url)
    logging.getLogger(logger_name).warning("connection pool full")

    output = capsys.readouterr()
    assert "Pa55w0rd" not in output.out + output.err
    assert [line["event"] for line in _json_lines(output.out)] == ["connection pool full"]
