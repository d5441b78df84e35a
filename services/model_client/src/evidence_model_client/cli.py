"""``evidence-model-server``: run the local model server with uvicorn."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import structlog
import typer
import uvicorn
from evidence_logging import exit_on_invalid_settings
from pydantic import ValidationError

from evidence_model_client.config import ServerSettings, get_server_settings
from evidence_model_client.errors import ArtifactError
from evidence_model_client.logs import configure_logging
from evidence_model_client.served_model import load_served_model
from evidence_model_client.server import create_app

__all__ = ["app"]

app = typer.Typer(add_completion=False, help="Serve the risk model over the Snowflake protocol.")


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind (env MODEL_SERVER_HOST, default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="TCP port (env MODEL_SERVER_PORT, default 5000)."),
    ] = None,
    artifact_dir: Annotated[
        Path | None,
        typer.Option(
            help="Model artifact directory (env MODEL_SERVER_ARTIFACT_DIR, default var/model)."
        ),
    ] = None,
) -> None:
    """Load the model artifact (or the built-in function if none exists) and serve it.

    Exits with status 2 when a MODEL_SERVER_* setting is invalid, or when the
    artifact is invalid or was trained on another feature spec. A SIGTERM stop
    exits with status 0 after uvicorn's graceful shutdown.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        from_environment = get_server_settings()
    except ValidationError as exc:
        exit_on_invalid_settings([(exc, ServerSettings)])
    overrides = {
        key: value
        for key, value in {"host": host, "port": port, "artifact_dir": artifact_dir}.items()
        if value is not None
    }
    # Only --port could fail this second validation, and typer has checked its range.
    settings = ServerSettings(**{**from_environment.model_dump(), **overrides})
    configure_logging(settings.log_level)
    log = structlog.get_logger("evidence_model_server")
    try:
        served = load_served_model(settings)
    except ArtifactError as exc:
        log.error("model server start failed", error_kind=exc.kind, error=str(exc))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    uvicorn.run(
        create_app(settings, served=served),
        host=settings.host,
        port=settings.port,
        access_log=False,
        # uvicorn's own loggers then propagate to the JSON allow-list of configure_logging,
        # instead of writing tracebacks (which may quote request values) to stderr.
        log_config=None,
        log_level=settings.log_level,
    )


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # uvicorn 0.29 and later catch SIGTERM, shut down gracefully, restore this handler and
    # raise the signal again, so with the default action the process would end killed by
    # SIGTERM, which supervisord logs as a WARN. This handler turns that stop, and a SIGTERM
    # while the artifact loads, into a normal exit.
    raise SystemExit(0)
