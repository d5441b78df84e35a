"""Helpers for tests and benchmarks that run the stack's processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from evidence_gateway.stack.processes import warm_up_model

__all__ = [
    "ServerProcess",
    "Stack",
    "free_port",
    "script_path",
    "start_gateway",
    "start_model_server",
    "start_worker",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def script_path(name: str) -> str:
    """Return the path of a console script installed next to this interpreter."""
    return str(Path(sys.executable).parent / name)


class ServerProcess:
    """A server subprocess that counts as started once ``ready_url`` returns 200.

    Args:
        command: Program and arguments.
        ready_url: URL polled until it returns 200.
        env: Extra environment variables on top of this process's environment.
        log_path: File receiving the process's stdout and stderr.
        timeout: Seconds to wait for readiness.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        ready_url: str,
        env: Mapping[str, str] | None = None,
        log_path: Path,
        timeout: float = 60.0,
    ) -> None:
        self.command = list(command)
        self.ready_url = ready_url
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_path = log_path
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Self:
        """Start the process and wait until ``ready_url`` returns 200.

        Raises:
            RuntimeError: the process exited or did not become ready in time; the message
                ends with the tail of its log.
        """
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - command comes from the calling test
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                if httpx.get(self.ready_url, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        msg = f"{self.command[0]} did not become ready at {self.ready_url}; log tail:\n{tail}"
        raise RuntimeError(msg)

    def start_without_probe(self, settle_seconds: float = 0.5) -> Self:
        """Start a process that serves no HTTP; fail if it exits within ``settle_seconds``.

        Raises:
            RuntimeError: the process exited at once; the message ends with its log tail.
        """
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - command comes from the calling test
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        time.sleep(settle_seconds)
        if self._process.poll() is not None:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            msg = f"{self.command[0]} exited at once; log tail:\n{tail}"
            raise RuntimeError(msg)
        return self

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """Process id of the running server."""
        if self._process is None:
            msg = "the process has not been started"
            raise RuntimeError(msg)
        return self._process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process with SIGTERM, then SIGKILL after ``timeout`` seconds."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class Stack:
    """URLs and files of one running set of processes."""

    directory: Path
    model_url: str
    gateway_url: str
    queue_path: Path
    store_path: Path
    processes: dict[str, ServerProcess] = field(default_factory=dict)

    def stored_ids(self, prediction_ids: Sequence[str]) -> int:
        """Count rows of ML_MODELS__MODEL_PREDICTIONS with the given ids."""
        if not self.store_path.is_file():
            return 0
        connection = sqlite3.connect(f"{self.store_path.as_uri()}?mode=ro", uri=True)
        try:
            placeholders = ",".join("?" * len(prediction_ids))
            row = connection.execute(
                "SELECT COUNT(*) FROM ML_MODELS__MODEL_PREDICTIONS "  # noqa: S608
                f"WHERE PREDICTION_ID IN ({placeholders})",
                list(prediction_ids),
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
        finally:
            connection.close()
        return int(row[0])

    def total_rows(self, table: str) -> int:
        """Count all rows of a store table."""
        connection = sqlite3.connect(f"{self.store_path.as_uri()}?mode=ro", uri=True)
        try:
            return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
        finally:
            connection.close()

    def wait_stored(self, prediction_ids: Sequence[str], timeout: float = 20.0) -> int:
        """Wait until the worker has written every id or ``timeout`` passed; return the count."""
        deadline = time.monotonic() + timeout
        count = self.stored_ids(prediction_ids)
        while count < len(prediction_ids) and time.monotonic() < deadline:
            time.sleep(0.1)
            count = self.stored_ids(prediction_ids)
        return count


def start_model_server(directory: Path, artifact_dir: Path) -> tuple[ServerProcess, str]:
    """Start ``evidence-model-server`` on a free port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        [script_path("evidence-model-server")],
        ready_url=f"{url}/health",
        env={
            "MODEL_SERVER_PORT": str(port),
            "MODEL_SERVER_ARTIFACT_DIR": str(artifact_dir),
            "MODEL_SERVER_LOG_LEVEL": "warning",
            # One OpenMP thread per prediction: on a busy machine sklearn's default thread
            # team turns a 1-row prediction into hundreds of milliseconds.
            "OMP_NUM_THREADS": "1",
        },
        log_path=directory / f"model-{port}.log",
    )
    server.start()
    warm_up_model(url)
    return server, url


def start_gateway(
    directory: Path, model_url: str, artifact_dir: Path, **env: str
) -> tuple[ServerProcess, str]:
    """Start ``evidence-gateway`` on a free port, queueing into ``directory``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        [script_path("evidence-gateway")],
        ready_url=f"{url}/health/live",
        env={
            "GATEWAY_PORT": str(port),
            "GATEWAY_LOCAL_MODE": "true",
            "GATEWAY_QUEUE_PATH": str(directory / "queue.sqlite3"),
            "GATEWAY_EXTRACTION_WORKERS": "2",
            "MODEL_CLIENT_BASE_URL": model_url,
            "MODEL_CLIENT_REASON_PROFILE_DIR": str(artifact_dir),
            "MODEL_CLIENT_DEADLINE_MS": "3000",
            **env,
        },
        log_path=directory / f"gateway-{port}.log",
    )
    return server.start(), url


def start_worker(directory: Path) -> ServerProcess:
    """Start ``evidence-persistence worker`` draining the queue into the SQLite store."""
    worker = ServerProcess(
        [script_path("evidence-persistence"), "worker"],
        ready_url="",
        env={
            "PERSISTENCE_QUEUE_PATH": str(directory / "queue.sqlite3"),
            "PERSISTENCE_STORE_PATH": str(directory / "store.sqlite3"),
            "PERSISTENCE_POLL_INTERVAL_SECONDS": "0.05",
        },
        log_path=directory / "worker.log",
    )
    worker.start_without_probe()
    return worker
