"""``evidence-gateway``: run the app under uvicorn with the ``GATEWAY_*`` settings."""

from __future__ import annotations

import re
from pathlib import Path

import typer
import uvicorn
from evidence_model_client.config import ClientSettings, get_client_settings

from evidence_gateway.config import Settings, get_settings
from evidence_gateway.settings_check import check_settings

__all__ = ["app", "clear_metrics_files", "main"]

# Above httpx's default keep-alive expiry (5 s) so a client never reuses a socket the server
# is closing at the same moment.
_KEEP_ALIVE_SECONDS = 15
# uvicorn's httptools protocol with the GATEWAY_HEADER_TIMEOUT_SECONDS, GATEWAY_MAX_HEADER_BYTES
# and GATEWAY_WRITE_TIMEOUT_SECONDS bounds added. An import string, not the class, so that
# workers spawned for GATEWAY_WORKERS > 1 load it too, and so that this supervising process
# does not import the app's modules and metrics.
_HTTP_PROTOCOL = "evidence_gateway.write_timeout:WriteTimeoutProtocol"
# The files prometheus-client writes per process into PROMETHEUS_MULTIPROC_DIR, such as
# counter_1234.db and gauge_livesum_1234.db.
_METRICS_FILE = re.compile(r"(?:counter|gauge|histogram|summary)_[a-z_]*\d+\.db")


def load_settings() -> Settings:
    """Read the ``GATEWAY_*`` settings, or exit with status 2 naming each invalid variable.

    The ``MODEL_CLIENT_*`` settings are checked here as well because the app builds its scorer
    only in the lifespan, where an invalid value would end uvicorn with a traceback.
    """
    check_settings({Settings: get_settings, ClientSettings: get_client_settings})
    return get_settings()


app = typer.Typer(add_completion=False)


@app.command()
def serve() -> None:
    """Serve the gateway app under uvicorn, with every setting read from the environment.

    The settings are the GATEWAY_* and MODEL_CLIENT_* variables of
    docs/gateway.md, such as GATEWAY_HOST, GATEWAY_PORT, GATEWAY_WORKERS and
    GATEWAY_API_TOKEN. Each worker builds its own app from them. With several
    workers, set PROMETHEUS_MULTIPROC_DIR to a folder that only this gateway
    uses, so that /metrics covers all of them. The metrics files of earlier
    runs are deleted from it at start. The workers share the outcome of their
    queue appends, for readiness, through a file in GATEWAY_APPEND_STATUS_DIR
    (default /dev/shm). Exits with status 2, before binding the port, when a
    setting is invalid.
    """
    settings = load_settings()
    if settings.prometheus_multiproc_dir is not None:
        clear_metrics_files(settings.prometheus_multiproc_dir)
    uvicorn.run(
        "evidence_gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        http=_HTTP_PROTOCOL,
    )


def clear_metrics_files(directory: Path) -> int:
    """Delete the metrics files of earlier gateway processes from ``directory``.

    prometheus-client adds up the files of every process that ever wrote to the directory, so
    without this a restarted gateway would report the counters of its previous run. Only
    prometheus-client's own file names are deleted. Returns how many files were deleted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    deleted = 0
    for path in directory.iterdir():
        if _METRICS_FILE.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def main() -> None:
    """Run ``evidence-gateway``, which accepts no argument except ``--help``."""
    # typer parses the arguments, so --help prints the usage instead of starting a server.
    app()
