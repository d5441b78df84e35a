"""The reduction of logged exceptions to their type and frames."""

from __future__ import annotations

import sys

import pytest
from evidence_logging import ExceptionSummarizer, exception_frames

CANARY = "CANARY-JANE-EXAMPLE"


def _raise_canary() -> None:
    raise ValueError(CANARY)


def test_summarizer_exc_info_true_gives_type() -> None:
    """exc_info=True inside an except block names the exception being handled."""
    summarize = ExceptionSummarizer()
    try:
        _raise_canary()
    except ValueError:
        event = summarize(None, "error", {"event": "failed", "exc_info": True})

    assert {"event": "failed", "exception_type": "ValueError"} == event


def test_summarizer_exception_instance_gives_type() -> None:
    """An exception object as exc_info gives its type."""
    event = ExceptionSummarizer()(None, "error", {"event": "e", "exc_info": KeyError(CANARY)})

    assert {"event": "e", "exception_type": "KeyError"} == event


def test_summarizer_exc_info_tuple_gives_type() -> None:
    """A sys.exc_info() tuple gives the type, and its traceback is not rendered."""
    try:
        _raise_canary()
    except ValueError:
        exc_info = sys.exc_info()

    event = ExceptionSummarizer()(None, "error", {"event": "e", "exc_info": exc_info})

    assert {"event": "e", "exception_type": "ValueError"} == event


@pytest.mark.parametrize("exc_info", [False, None, (None, None, None)])
def test_summarizer_no_exception_removes_key(exc_info: object) -> None:
    """An exc_info that names no exception is removed and adds no type."""
    event = ExceptionSummarizer()(None, "info", {"event": "e", "exc_info": exc_info})

    assert {"event": "e"} == event


def test_summarizer_exc_info_true_outside_except_adds_nothing() -> None:
    """exc_info=True with no exception being handled adds no type."""
    event = ExceptionSummarizer()(None, "error", {"event": "e", "exc_info": True})

    assert {"event": "e"} == event


def test_summarizer_removes_stack_and_formatted_exception() -> None:
    """stack_info and a traceback already formatted into ``exception`` are removed."""
    event = {"event": "e", "stack_info": "Stack (most recent call last)", "exception": CANARY}

    assert {"event": "e"} == ExceptionSummarizer()(None, "info", event)


def test_summarizer_frames_name_code_locations() -> None:
    """With include_frames, frames lists file, line and function, and no message."""
    try:
        _raise_canary()
    except ValueError as error:
        event = ExceptionSummarizer(include_frames=True)(None, "error", {"exc_info": error})

    frames = event["frames"]
    assert 2 == len(frames)
    assert frames[0].startswith("test_logging_exceptions.py:")
    assert frames[0].endswith(" test_summarizer_frames_name_code_locations")
    assert frames[1].endswith(" _raise_canary")
    assert CANARY not in repr(event)


def test_summarizer_frames_absent_by_default() -> None:
    """Without include_frames no frames key is added."""
    event = ExceptionSummarizer()(None, "error", {"exc_info": ValueError(CANARY)})

    assert "frames" not in event


def test_exception_frames_unraised_exception_empty() -> None:
    """An exception that was never raised has no traceback and so no frames."""
    assert [] == exception_frames(ValueError("x").__traceback__)
