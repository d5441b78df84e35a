"""``evidence-dashboard``: start the dashboard's Streamlit server on the configured address."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from evidence_logging import exit_on_invalid_settings
from pydantic import ValidationError

from evidence_dashboard.config import Settings, get_settings

__all__ = ["app", "build_command"]

APP_PATH = Path(__file__).with_name("app.py")

app = typer.Typer(add_completion=False, help=__doc__)


def build_command(host: str, port: int) -> list[str]:
    """Return the ``streamlit run`` command line for the dashboard on ``host:port``."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


@app.command()
def main(
    host: Annotated[
        str | None, typer.Option(help="Address to bind; default DASHBOARD_HOST or 127.0.0.1.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind; default DASHBOARD_PORT or 8501.")
    ] = None,
    check_settings: Annotated[
        bool,
        typer.Option(
            "--check-settings",
            help="Only check the DASHBOARD_* settings: exit 0 if valid, 2 if not.",
        ),
    ] = False,
) -> None:
    """Run the dashboard until interrupted; the settings come from DASHBOARD_* variables.

    Exits with status 2, before Streamlit starts, when a DASHBOARD_* setting
    is invalid.
    """
    try:
        settings = get_settings()
    except ValidationError as exc:
        exit_on_invalid_settings([(exc, Settings)])
    if check_settings:
        return
    command = build_command(host or settings.host, port or settings.port)
    # The Streamlit process replaces the CLI's own, so signals from a process manager reach it.
    os.execv(command[0], command)  # noqa: S606


if __name__ == "__main__":  # pragma: no cover
    app()
