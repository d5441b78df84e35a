"""Gateway worker processes stop when the uvicorn process that started them dies."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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


def _running(process: psutil.Process) -> bool:
    # A worker that exited after its parent was killed belongs to init, which may reap it
    # later: until then it is a zombie, which has stopped but which psutil counts as running.
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Return the processes still running after ``timeout`` seconds, polling every 0.1 s."""
    deadline = time.monotonic() + timeout
    alive = [process for process in processes if _running(process)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [process for process in alive if _running(process)]
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


def _pool_processes(gateway_pid: int) -> list[psutil.Process]:
    """The extraction pool's processes: children of multiprocessing's fork server."""
    found = []
    for child in psutil.Process(gateway_pid).children(recursive=True):
        if child.ppid() != gateway_pid:
            found.append(child)
    return found


SAMPLE = Path(__file__).resolve().parents[3] / "data" / "samples" / "02-diabetic"


def _large_batch(rows: int) -> dict[str, object]:
    """A service-function batch of ``rows`` copies of the 50 KB sample pair."""
    mib = (SAMPLE / "mib.xml").read_text(encoding="utf-8")
    rx = (SAMPLE / "rx.xml").read_text(encoding="utf-8")
    return {"data": [[row, f"POOL-{row}", mib, rx] for row in range(rows)]}


def _start_process_pool_gateway(
    model_server_url: str, tmp_path: Path, **env: str
) -> tuple[Any, str]:
    return start_gateway(
        tmp_path,
        model_server_url,
        tmp_path / "no-model",
        GATEWAY_EXTRACTION_EXECUTOR="process",
        GATEWAY_INLINE_EXTRACTION_MAX_BYTES="0",
        **env,
    )


def _blocked_signals(pid: int) -> set[int]:
    """Signal numbers that process ``pid`` blocks, from the SigBlk mask in /proc."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
    )
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


def test_fork_server_and_pool_block_stop_signals(model_server_url: str, tmp_path: Path) -> None:
    """The fork server and every pool process block SIGTERM and SIGINT; the gateway does not."""
    gateway, url = _start_process_pool_gateway(model_server_url, tmp_path)
    try:
        assert httpx.post(f"{url}/functions/predict", json=_large_batch(8)).status_code == 200
        pool = _pool_processes(gateway.pid)
        fork_servers = {process.ppid() for process in pool}
        blocked = {pid: _blocked_signals(pid) for pid in [*fork_servers, *(p.pid for p in pool)]}
        gateway_blocked = _blocked_signals(gateway.pid)
    finally:
        gateway.stop()

    assert len(pool) >= 1
    assert len(fork_servers) == 1
    assert all({signal.SIGTERM, signal.SIGINT} <= numbers for numbers in blocked.values()), blocked
    assert not {signal.SIGTERM, signal.SIGINT} & gateway_blocked


def test_pool_processes_stop_when_gateway_killed(model_server_url: str, tmp_path: Path) -> None:
    """SIGKILL of a gateway with a process pool ends the pool's processes too."""
    gateway, url = _start_process_pool_gateway(model_server_url, tmp_path)
    pool: list[psutil.Process] = []
    try:
        assert httpx.post(f"{url}/functions/predict", json=_large_batch(8)).status_code == 200
        pool = _pool_processes(gateway.pid)
        assert len(pool) >= 1

        psutil.Process(gateway.pid).send_signal(signal.SIGKILL)
        survivors = _wait_gone(pool, timeout=20.0)
    finally:
        for process in pool:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        gateway.stop()

    assert survivors == []


def test_group_sigterm_finishes_pool_requests(model_server_url: str, tmp_path: Path) -> None:
    """SIGTERM to the gateway and all its children at once still completes in-flight batches.

    The fork server and the pool processes block SIGTERM, so the batches finish on them, and
    the pools that replace recycled ones after the signal start as well.
    """
    # Each batch of 300 pairs is about 16 MB, so the pool is replaced by a fresh one, through
    # the fork server, after the signal too.
    gateway, url = _start_process_pool_gateway(
        model_server_url, tmp_path, GATEWAY_EXTRACTION_RECYCLE_BYTES="20000000"
    )
    try:
        assert httpx.post(f"{url}/functions/predict", json=_large_batch(8)).status_code == 200
        assert _pool_processes(gateway.pid)
        # Six batches of 300 pairs take seconds to extract on 2 cores, so the signal below
        # arrives while they are in the pool.
        payload = json.dumps(_large_batch(300)).encode()
        headers = {"content-type": "application/json", "content-length": str(len(payload))}

        # uvicorn closes idle connections when it stops and refuses new ones, and neither is
        # what this test is about. So each client passes the barrier only once the first half
        # of its body is in the socket, when the gateway has read the request's headers.
        # Waiting after connecting instead let a client on a loaded machine reach the barrier
        # but send its request after the signal, into a closed connection.
        in_flight = threading.Barrier(7)

        def body_halves() -> Iterator[bytes]:
            half = len(payload) // 2
            yield payload[:half]
            in_flight.wait(timeout=60)
            yield payload[half:]

        def post_batch() -> int:
            with httpx.Client(base_url=url, timeout=120) as client:
                response = client.post("/functions/predict", content=body_halves(), headers=headers)
                return response.status_code

        with ThreadPoolExecutor(max_workers=6) as clients:
            responses = [clients.submit(post_batch) for _ in range(6)]
            in_flight.wait(timeout=60)
            time.sleep(0.5)
            # What a supervisor's stopasgroup does: the signal reaches every process.
            gateway_process = psutil.Process(gateway.pid)
            for process in [gateway_process, *gateway_process.children(recursive=True)]:
                process.send_signal(signal.SIGTERM)
            statuses = [future.result() for future in responses]
    finally:
        gateway.stop()

    assert statuses == [200] * 6
