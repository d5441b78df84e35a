"""Help text of every console script, as typer renders it in an 80-column terminal.

typer's rich help keeps the line breaks of a command's docstring after its first paragraph,
and rich then wraps each source line again at the terminal's width. A source line longer
than the terminal leaves a short fragment on a line of its own, so those lines must fit.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
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


# The README's console scripts with their typer apps.
SCRIPT_APPS = {
    "evidence-score": "evidence_gateway.cli.score:app",
    "evidence-stack": "evidence_gateway.cli.stack:app",
    "evidence-train": "evidence_training.cli:app",
    "evidence-synth": "evidence_synthetic.cli:app",
    "evidence-dashboard": "evidence_dashboard.cli:app",
    "evidence-persistence": "evidence_persistence.cli:app",
}
_README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_command_cells() -> list[str]:
    """Return the first cell of each row of the README's "Other commands" table."""
    text = _README.read_text(encoding="utf-8")
    section = text[text.index("## Other commands") :]
    table = section[section.index("| command | what it does |") :].split("\n\n")[0]
    return [line.split(" | ")[0] for line in table.splitlines()[2:]]


def _unknown_subcommand(words: list[str]) -> str | None:
    """Return the first word that names no subcommand of the script in ``words[0]``."""
    module, attribute = SCRIPT_APPS[words[0]].split(":")
    command = typer.main.get_command(getattr(importlib.import_module(module), attribute))
    for word in words[1:]:
        # A group is recognised by its subcommands; past a leaf come arguments and options.
        subcommands = getattr(command, "commands", None)
        if not subcommands or word.startswith("-"):
            return None
        if word not in subcommands:
            return word
        command = subcommands[word]
    return None


def test_readme_commands_exist() -> None:
    """Each command in the README's table is typed whole and names existing subcommands."""
    cells = _readme_command_cells()
    spans = [span for cell in cells for span in re.findall(r"`([^`]+)`", cell)]

    assert len(cells) >= 8
    for span in spans:
        words = span.split()
        assert words[0] in {*SCRIPT_APPS, "make"}, f"{span!r} does not start with a command"
        if words[0] in SCRIPT_APPS:
            assert _unknown_subcommand(words) is None, f"{span!r} names no such command"
