"""Rich tables shared by the command-line tools."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.markup import escape
from rich.table import Table

__all__ = ["prediction_table"]

_LEVEL_STYLES = {"LOW": "green", "MEDIUM": "yellow", "HIGH": "bold red"}


def prediction_table(
    title: str, rows: Iterable[tuple[str, dict[str, Any]]], *, details_column: bool = True
) -> Table:
    """Build a table of ``(path, response)`` pairs; a response is a prediction or an error.

    Without ``details_column`` the table leaves out the warnings and errors, which the caller
    then prints on lines of their own (``prediction_details``), so that they stay readable in
    an 80-column terminal.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("path", no_wrap=True)
    # A long policy number wraps instead of being cut short: it identifies the case.
    table.add_column("policy", overflow="fold")
    table.add_column("risk_score", justify="right", no_wrap=True)
    table.add_column("risk_level", no_wrap=True)
    table.add_column("model_version", no_wrap=True)
    table.add_column("inference_ms", justify="right", no_wrap=True)
    if details_column:
        table.add_column("warnings / error")
    for path, answer in rows:
        error = answer.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else str(error)
            cells = [escape(path), escape(str(answer.get("policy_number", ""))), "", "", "", ""]
            table.add_row(*cells, *([escape(str(message))] if details_column else []))
            continue
        # Values from the response are escaped, so that brackets in them print as they are
        # instead of being read as Rich markup.
        level = str(answer["risk_level"])
        cells = [
            escape(path),
            escape(str(answer["policy_number"])),
            f"{answer['risk_score']:.4f}",
            f"[{_LEVEL_STYLES.get(level, '')}]{escape(level)}[/]",
            escape(str(answer["model_version"])),
            f"{answer['inference_ms']:.1f}",
        ]
        table.add_row(*cells, *([escape(_warnings_text(answer))] if details_column else []))
    return table


def prediction_details(answer: dict[str, Any]) -> list[str]:
    """Return the fallback reason and the warnings of one prediction, one line each.

    The lines are plain text: print them with Rich markup off.
    """
    lines = []
    if answer.get("fallback_reason"):
        lines.append(f"fallback_reason: {answer['fallback_reason']}")
    for warning in answer.get("warnings", []):
        lines.append(f"warning: {warning['document']} {warning['kind']} ×{warning['count']}")
        # Only some kinds carry a message, and older gateways send none.
        if warning.get("message"):
            lines.append(f"  {warning['message']}")
    return lines


def _warnings_text(answer: dict[str, Any]) -> str:
    return ", ".join(
        f"{w['document']}:{w['kind']}×{w['count']}"
        + (f" ({w['message']})" if w.get("message") else "")
        for w in answer.get("warnings", [])
    )
