"""Ports, paths and environment of the local stack's processes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StackLayout"]


@dataclass(frozen=True, slots=True)
class StackLayout:
    """Ports of the stack's processes and the files they share.

    Args:
        root: Repository root holding the ``Procfile``.
        var_dir: Runtime directory (model artifact, queue, store, logs).
        gateway_port: Gateway port on 127.0.0.1.
        model_port: Local model server port on 127.0.0.1.
        dashboard_port: Dashboard port on 127.0.0.1.
        gateway_workers: uvicorn worker processes of the gateway.
    """

    root: Path
    var_dir: Path
    gateway_port: int = 8000
    model_port: int = 5000
    dashboard_port: int = 8501
    gateway_workers: int = 1

    @property
    def host(self) -> str:
        """Interface every process binds to."""
        return "127.0.0.1"

    @property
    def model_dir(self) -> Path:
        """Model artifact directory."""
        return self.var_dir / "model"

    @property
    def queue_path(self) -> Path:
        """Durable queue file shared by the gateway and the worker."""
        return self.var_dir / "queue.sqlite3"

    @property
    def store_path(self) -> Path:
        """SQLite store with the prediction tables."""
        return self.var_dir / "store.sqlite3"

    @property
    def prometheus_dir(self) -> Path:
        """Shared metrics directory of the gateway's uvicorn workers."""
        return self.var_dir / "prometheus"

    @property
    def log_path(self) -> Path:
        """supervisord's log: process starts, exits and restarts, and training output."""
        return self.var_dir / "stack.log"

    @property
    def process_log_dir(self) -> Path:
        """Directory of the processes' own output, one ``<name>.log`` per process."""
        return self.var_dir / "logs"

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway."""
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def model_url(self) -> str:
        """Base URL of the local model server."""
        return f"http://{self.host}:{self.model_port}"

    @property
    def dashboard_url(self) -> str:
        """URL of the dashboard."""
        return f"http://{self.host}:{self.dashboard_port}"

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """Return ``base`` plus the settings of every process of the stack.

        The interpreter's ``bin`` directory goes first on ``PATH`` so the Procfile finds the
        project's console scripts without an activated virtualenv.
        """
        bin_dir = str(Path(sys.executable).parent)
        env = dict(base)
        env["PATH"] = os.pathsep.join([bin_dir, base.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        env.update(
            {
                "MODEL_SERVER_HOST": self.host,
                "MODEL_SERVER_PORT": str(self.model_port),
                "MODEL_SERVER_ARTIFACT_DIR": str(self.model_dir),
                "MODEL_CLIENT_BASE_URL": self.model_url,
                "MODEL_CLIENT_REASON_PROFILE_DIR": str(self.model_dir),
                "GATEWAY_HOST": self.host,
                "GATEWAY_PORT": str(self.gateway_port),
                # The stack binds 127.0.0.1 only; /v1 then works without a bearer token.
                "GATEWAY_LOCAL_MODE": "true",
                "GATEWAY_WORKERS": str(self.gateway_workers),
                "GATEWAY_QUEUE_PATH": str(self.queue_path),
                "PERSISTENCE_QUEUE_PATH": str(self.queue_path),
                "PERSISTENCE_STORE_PATH": str(self.store_path),
                "DASHBOARD_HOST": self.host,
                "DASHBOARD_PORT": str(self.dashboard_port),
                "DASHBOARD_STORE_PATH": str(self.store_path),
                "DASHBOARD_QUEUE_PATH": str(self.queue_path),
                "DASHBOARD_ARTIFACT_DIR": str(self.model_dir),
                "DASHBOARD_GATEWAY_URL": self.gateway_url,
            }
        )
        # The local model server shares two cores with everything else and its first sklearn
        # call is slow, so the SPCS default deadline (50 ms) would send the first requests to
        # the fallback. A variable already set in the environment wins.
        env.setdefault("MODEL_CLIENT_DEADLINE_MS", "1000")
        # One OpenMP thread per process: sklearn's default thread team makes a 1-row
        # prediction slow and erratic on a busy two-core machine.
        env.setdefault("OMP_NUM_THREADS", "1")
        # Only the gateway gets it (gateway_environment): the worker and the model server
        # would write their own metrics into the directory, and the gateway's /metrics would
        # then show them as well.
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def gateway_environment(self) -> dict[str, str]:
        """Return the variables the gateway gets on top of ``environment``.

        With several workers that is ``PROMETHEUS_MULTIPROC_DIR``, so that ``/metrics`` sums
        every worker's samples.
        """
        if self.gateway_workers > 1:
            return {"PROMETHEUS_MULTIPROC_DIR": str(self.prometheus_dir)}
        return {}
