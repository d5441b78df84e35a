"""Rich tables shared by the command-line tools."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table

__all__ = ["prediction_table"]

_LEVEL_STYLES = {"LOW": "green", "MEDIUM": "yellow", "HIGH": "bold red"}


def prediction_table(title: str, rows: Iterable[tuple[str, dict[str, Any]]]) -> Table:
    """Build a table of ``(path, response)`` pairs; a response is a prediction or an error."""
    table = Table(title=title, title_justify="left")
    table.add_column("path", no_wrap=True)
    table.add_column("policy", no_wrap=True)
    table.add_column("risk_score", justify="right", no_wrap=True)
    table.add_column("risk_level", no_wrap=True)
    table.add_column("model_version", no_wrap=True)
    table.add_column("inference_ms", justify="right", no_wrap=True)
    table.add_column("warnings / error")
    for path, answer in rows:
        error = answer.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else str(error)
            table.add_row(path, str(answer.get("policy_number", "")), "", "", "", "", message)
            continue
        level = str(answer["risk_level"])
        warnings = ", ".join(
            f"{w['document']}:{w['kind']}×{w['count']}" for w in answer.get("warnings", [])
        )
        table.add_row(
            path,
            str(answer["policy_number"]),
            f"{answer['risk_score']:.4f}",
            f"[{_LEVEL_STYLES.get(level, '')}]{level}[/]",
            str(answer["model_version"]),
            f"{answer['inference_ms']:.1f}",
            warnings,
        )
    return table
