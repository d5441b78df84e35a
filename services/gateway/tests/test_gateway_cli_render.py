"""The command-line tools' prediction table and detail lines."""

from __future__ import annotations

from typing import Any

from evidence_gateway.cli.render import prediction_details, prediction_table
from rich.console import Console


def _answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "policy_number": "P-1",
        "risk_score": 0.25,
        "risk_level": "LOW",
        "model_version": "REGISTRY_V2",
        "inference_ms": 3.5,
        "fallback_reason": None,
        "warnings": [],
    }
    answer.update(overrides)
    return answer


def _render(*rows: tuple[str, dict[str, Any]], details_column: bool = True) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(prediction_table("t", rows, details_column=details_column))
    return console.export_text()


def test_render_brackets_printed_verbatim() -> None:
    """Brackets in response values print as they are instead of being read as markup."""
    text = _render(
        ("API", _answer(policy_number="P[/b]1", model_version="[bold]V")),
        ("SQL", {"policy_number": "P[2]", "error": {"message": "bad [red]row"}}),
    )
    assert "P[/b]1" in text
    assert "[bold]V" in text
    assert "P[2]" in text
    assert "bad [red]row" in text


def test_render_details_column_optional() -> None:
    """Without the details column, warnings leave the table for prediction_details."""
    answer = _answer(
        fallback_reason="model_timeout",
        warnings=[{"document": "RX", "kind": "unknown_drug", "count": 2}],
    )
    with_column = _render(("API", answer))
    without_column = _render(("API", answer), details_column=False)

    assert "RX:unknown_drug×2" in with_column
    assert "warnings / error" in with_column
    assert "unknown_drug" not in without_column
    assert "warnings / error" not in without_column
    assert prediction_details(answer) == [
        "fallback_reason: model_timeout",
        "warning: RX unknown_drug ×2",
    ]


def test_render_details_empty_without_fallback_or_warnings() -> None:
    """A model response without warnings has no detail lines."""
    assert prediction_details(_answer()) == []


def test_render_details_warning_message_line() -> None:
    """A warning with a message gets it on an indented line under the warning line."""
    message = "RX document reports a vendor error but carries records"
    answer = _answer(
        warnings=[
            {"document": "RX", "kind": "partial_error_reply", "count": 1, "message": message},
            {"document": "MIB", "kind": "missing_document", "count": 1},
            {"document": "MIB", "kind": "unknown_drug", "count": 3, "message": ""},
        ]
    )

    assert prediction_details(answer) == [
        "warning: RX partial_error_reply ×1",
        f"  {message}",
        "warning: MIB missing_document ×1",
        "warning: MIB unknown_drug ×3",
    ]


def test_render_column_warning_message() -> None:
    """The details column puts a warning's message in brackets after the warning."""
    answer = _answer(
        warnings=[
            {"document": "RX", "kind": "partial_error_reply", "count": 1, "message": "retry"},
            {"document": "MIB", "kind": "missing_document", "count": 1},
        ]
    )

    text = _render(("API", answer))

    assert "RX:partial_error_reply×1 (retry), MIB:missing_document×1" in text
