"""Help text of every console script, as typer renders it in an 80-column terminal.

typer's rich help keeps the line breaks of a command's docstring after its first paragraph,
and rich then wraps each source line again at the terminal's width. A source line longer
than the terminal leaves a short fragment on a line of its own, so those lines must fit.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

# Each console script's typer app, as "module:attribute".
APPS = (
    "evidence_gateway.cli.score:app",
    "evidence_gateway.cli.stack:app",
    "evidence_gateway.server:app",
    "evidence_model_client.cli:app",
    "evidence_synthetic.cli:app",
    "evidence_training.cli:app",
    "evidence_dashboard.cli:app",
    "evidence_persistence.cli:app",
)
# 80 columns less rich's margin of one space on each side.
MAX_LINE = 78


def _commands(spec: str) -> Iterator[tuple[str, Any]]:
    module, attribute = spec.split(":")
    app = getattr(importlib.import_module(module), attribute)
    pending = [(module, typer.main.get_command(app))]
    while pending:
        name, command = pending.pop()
        yield name, command
        # typer 0.29 vendors click, so a group is recognised by its subcommands, not by its class.
        if hasattr(command, "commands"):
            pending.extend((f"{name} {sub}", child) for sub, child in command.commands.items())


def _all_commands() -> list[tuple[str, Any]]:
    return [entry for spec in APPS for entry in _commands(spec)]


def test_every_script_has_commands() -> None:
    """The list covers each app, and the group apps contribute their subcommands."""
    names = [name for name, _ in _all_commands()]

    assert len(names) >= len(APPS) + 3
    assert "evidence_persistence.cli worker" in names


@pytest.mark.parametrize(("name", "command"), _all_commands(), ids=lambda value: str(value))
def test_help_lines_fit_80_columns(name: str, command: Any) -> None:
    """Every line after the first paragraph fits 80 columns, and no reST markup shows."""
    text = inspect.cleandoc(command.help or "")
    _, *rest = text.split("\n\n")
    long_lines = [
        line for paragraph in rest for line in paragraph.splitlines() if len(line) > MAX_LINE
    ]

    assert [] == long_lines, name
    assert "``" not in text, name


def test_rendered_help_has_no_fragment_lines() -> None:
    """evidence-score's help at 80 columns wraps into lines of similar length."""
    from evidence_gateway.cli.score import app

    result = CliRunner().invoke(app, ["--help"], terminal_width=80, env={"COLUMNS": "80"})
    description = result.output.split("╭")[0]
    words_per_line = [len(line.split()) for line in description.splitlines() if line.strip()]

    assert 0 == result.exit_code, result.output
    assert "Exit status" in description
    # The usage line and the one-line summary come first, then the wrapped paragraph.
    assert all(count >= 4 for count in words_per_line[2:-1]), description
