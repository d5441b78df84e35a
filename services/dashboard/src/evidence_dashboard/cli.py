"""``evidence-dashboard``: start the dashboard's Streamlit server on the configured address."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from evidence_logging import exit_on_invalid_settings
from pydantic import ValidationError

from evidence_dashboard.config import MAX_PORT, MIN_PORT, Settings, get_settings

__all__ = ["app", "build_command"]

APP_PATH = Path(__file__).with_name("app.py")

app = typer.Typer(add_completion=False, help=__doc__)

_DEFAULT_PORT: int = Settings.model_fields["port"].default


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


def _check_port(port: int | None) -> int | None:
    # Streamlit fails with a traceback when it binds a port below 0 or above 65535, and for 0 it
    # binds a port the OS picks. typer's own range check names neither the value nor the range,
    # so the message is built here.
    if port is not None and not MIN_PORT <= port <= MAX_PORT:
        msg = (
            f"port {port} is not in the range {MIN_PORT} to {MAX_PORT}; pass a port in that "
            f"range, or leave out --port to use DASHBOARD_PORT (default {_DEFAULT_PORT})"
        )
        raise typer.BadParameter(msg)
    return port


@app.command()
def main(
    host: Annotated[
        str | None, typer.Option(help="Address to bind; default DASHBOARD_HOST or 127.0.0.1.")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            callback=_check_port,
            help=(
                f"Port to bind, {MIN_PORT} to {MAX_PORT}; default DASHBOARD_PORT or "
                f"{_DEFAULT_PORT}."
            ),
        ),
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

    Exits with status 2, before Streamlit starts, when --port or a DASHBOARD_*
    setting is invalid.
    """
    try:
        settings = get_settings()
    except ValidationError as exc:
        exit_on_invalid_settings([(exc, Settings)])
    if check_settings:
        return
    command = build_command(host or settings.host, settings.port if port is None else port)
    # The Streamlit process replaces the CLI's own, so signals from a process manager reach it.
    os.execv(command[0], command)  # noqa: S606


if __name__ == "__main__":  # pragma: no cover
    app()
