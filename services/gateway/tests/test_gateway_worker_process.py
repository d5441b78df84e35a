"""Gateway worker processes stop when the uvicorn process that started them dies."""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from evidence_gateway.testing import start_gateway
from evidence_gateway.worker_process import stop_with_parent_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only"),
]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return alive


def test_single_process_does_not_follow_parent() -> None:
    """A process that multiprocessing did not start is left alone."""
    assert multiprocessing.parent_process() is None
    assert stop_with_parent_process() is False


def test_workers_stop_when_uvicorn_killed(model_server_url: str, tmp_path: Path) -> None:
    """SIGKILL of a two-worker gateway's uvicorn process stops both workers and frees the port."""
    gateway, url = start_gateway(
        tmp_path,
        model_server_url,
        tmp_path / "no-model",
        GATEWAY_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    port = int(url.rsplit(":", 1)[1])
    parent = psutil.Process(gateway.pid)
    # uvicorn also starts multiprocessing's resource tracker, which is not a worker.
    children = parent.children()
    workers = [child for child in children if "resource_tracker" not in " ".join(child.cmdline())]
    try:
        assert len(workers) == 2
        assert httpx.get(f"{url}/health/live").status_code == 200

        parent.send_signal(signal.SIGKILL)
        survivors = _wait_gone(workers, timeout=20.0)
        deadline = time.monotonic() + 10.0
        while not _port_free(port) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        # Orphaned workers belong to init, not to this test, so they are killed by pid.
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        gateway.stop()

    assert survivors == []
    assert _port_free(port)
