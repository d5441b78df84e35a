"""``evidence-gateway``: run the app under uvicorn with the ``GATEWAY_*`` settings."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import typer
import uvicorn
from evidence_model_client.config import ClientSettings, get_client_settings
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from evidence_gateway.append_status_file import append_status_path
from evidence_gateway.config import Settings, get_settings
from evidence_gateway.settings_check import check_settings

__all__ = ["app", "clear_metrics_files", "main", "run_workers"]

_APP_FACTORY = "evidence_gateway.app:create_app"
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
# The variable of Settings.append_status_file, through which the workers get the status file.
_APPEND_STATUS_FILE_VARIABLE = "GATEWAY_APPEND_STATUS_FILE"


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
    setting is invalid, and with status 3 when a worker fails to start.
    A SIGTERM stop exits with status 0 after uvicorn's graceful shutdown.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings = load_settings()
    if settings.prometheus_multiproc_dir is not None:
        clear_metrics_files(settings.prometheus_multiproc_dir)
    if settings.workers > 1:
        # Resolved once here, so that a worker restarted after a symlink in the queue path
        # changed still uses the status file of the others. The spawned workers inherit the
        # environment.
        # NOTE: each worker still opens GATEWAY_QUEUE_PATH itself, so a worker restarted after
        # such a change queues into the symlink's new target.
        status_file = append_status_path(settings.append_status_dir, settings.queue_path)
        os.environ[_APPEND_STATUS_FILE_VARIABLE] = str(status_file)
    options: dict[str, Any] = {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": _KEEP_ALIVE_SECONDS,
        "http": _HTTP_PROTOCOL,
    }
    if settings.workers == 1:
        # With one worker uvicorn.run exits with STARTUP_FAILURE itself when start-up fails.
        uvicorn.run(_APP_FACTORY, **options)
    else:
        run_workers(uvicorn.Config(_APP_FACTORY, **options))


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # uvicorn 0.29 and later catch SIGTERM, shut down gracefully, restore this handler and
    # raise the signal again. With the default action the process would then end killed by
    # SIGTERM (status 143 in a shell), which supervisord logs as a WARN and service managers
    # report as a failure. The same handler ends a start-up that SIGTERM interrupts before
    # uvicorn installs its own. With GATEWAY_WORKERS > 1, uvicorn's supervisor replaces it and
    # returns normally after a SIGTERM.
    raise SystemExit(0)


def run_workers(config: uvicorn.Config) -> None:
    """Run ``config.workers`` worker processes under uvicorn's supervisor until it stops.

    uvicorn 0.55's ``uvicorn.run`` stops every worker when one fails to start, but then returns
    and the process exits with status 0, which a service manager takes for a normal stop. This
    exits with uvicorn's ``STARTUP_FAILURE`` (3) instead, as ``uvicorn.run`` does for one worker.
    """
    sock = config.bind_socket()
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
    # The supervisor leaves a worker that failed to start in its list and stops the others.
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        sys.exit(STARTUP_FAILURE)


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
