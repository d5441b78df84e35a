"""Readiness reports the queue as not writable while real appends fail, and recovers after.

With two workers, the limit applies to one worker process only, and the test checks that
probes served by either worker report that worker's failure until its window ends.

The real-process test limits the gateway's file size (RLIMIT_FSIZE, as ``ulimit -f`` does) to
a little above the queue's write-ahead log. The readiness write probe dirties one page, which
still fits, while a batch of records does not, so only the append fails. Python ignores
SIGXFSZ, so the write returns EFBIG and SQLite reports an error instead of the process dying.
After the failure SQLite copies the log into the database file and starts the log over, so
the next append may fit again. The test therefore checks readiness after one failed append,
and the unit tests cover the count of several.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.app import create_app
from evidence_gateway.append_status import APPEND_FAILURE_WINDOW_SECONDS, QueueAppendStatus
from evidence_gateway.append_status_file import AppendStatusFile, append_status_path
from evidence_gateway.config import Settings
from evidence_gateway.snowflake_headers import QUERY_BATCH_ID_HEADER
from evidence_gateway.testing import ServerProcess, free_port, start_gateway
from evidence_persistence import QueueFullError, QueueUnavailableError

from .conftest import client_settings

ROWS_PER_BATCH = 24
# The model check's error with nothing on the model port, before the circuit state.
MODEL_DOWN_ERROR = "model_unavailable, circuit "
# Room above the write-ahead log for 16 frames of a 4 KiB page and its 24-byte frame header:
# enough for every readiness probe of the test, far less than one batch of padded records.
PROBE_ROOM_BYTES = 16 * (4096 + 24)
# An XML comment of this size pads each document, so a batch spans many pages; no evidence.
PADDING_CHARACTERS = 6000
# The gateway's default GATEWAY_APPEND_STATUS_DIR, which the test gateways use.
STATUS_DIR: Path = Settings.model_fields["append_status_dir"].default


class FakeClock:
    """A monotonic clock that moves only when the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_append_status_starts_clear() -> None:
    """No append yet: no failure."""
    assert QueueAppendStatus().failure() is None


def test_append_status_one_failure() -> None:
    """One failed append: its error name, a count of 1 and its age."""
    clock = FakeClock()
    status = QueueAppendStatus(window_seconds=30.0, clock=clock)

    status.record_failure(QueueUnavailableError("disk full"))
    clock.now += 2.5
    failure = status.failure()

    assert failure is not None
    assert failure.error == "QueueUnavailableError"
    assert failure.failed_appends == 1
    assert failure.age_seconds == 2.5


def test_append_status_many_failures() -> None:
    """Several failed appends: the count grows and the latest error name is kept."""
    clock = FakeClock()
    status = QueueAppendStatus(window_seconds=30.0, clock=clock)

    status.record_failure(QueueUnavailableError("disk full"))
    clock.now += 1.0
    status.record_failure(QueueUnavailableError("disk full"))
    clock.now += 1.0
    status.record_failure(QueueFullError("full", depth=10, max_depth=10))
    failure = status.failure()

    assert failure is not None
    assert failure.error == "QueueFullError"
    assert failure.failed_appends == 3
    assert failure.age_seconds == 0.0


def test_append_status_success_clears() -> None:
    """A successful append clears the failure and its count."""
    clock = FakeClock()
    status = QueueAppendStatus(window_seconds=30.0, clock=clock)
    status.record_failure(QueueUnavailableError("disk full"))

    status.record_success()

    assert status.failure() is None
    status.record_failure(QueueUnavailableError("disk full"))
    failure = status.failure()
    assert failure is not None
    assert failure.failed_appends == 1


def test_append_status_window_expires() -> None:
    """A failure counts until the window has passed, and then no longer."""
    clock = FakeClock()
    status = QueueAppendStatus(window_seconds=30.0, clock=clock)
    status.record_failure(QueueUnavailableError("disk full"))

    clock.now += 29.999
    assert status.failure() is not None
    clock.now += 0.001
    assert status.failure() is None
    clock.now -= 1.0
    assert status.failure() is None


@pytest.mark.parametrize("window", [0.0, -1.0])
def test_append_status_invalid_window(window: float) -> None:
    """A window of 0 or less is rejected with the value in the message."""
    with pytest.raises(ValueError, match=f"window_seconds={window!r}"):
        QueueAppendStatus(window_seconds=window)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A gateway process with no model server, storing the raw documents on each record."""
    server, url = start_gateway(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        tmp_path / "no-artifact",
        GATEWAY_STORE_RAW_EVIDENCE="true",
    )
    try:
        yield server, url
    finally:
        server.stop()


def _batch(smoke_pair: tuple[str, str], batch: int) -> dict[str, Any]:
    mib, rx = smoke_pair
    padding = f"<!--{'p' * PADDING_CHARACTERS}-->"
    return {
        "data": [
            [row, f"READY-{batch}-{row}", mib + padding, rx + padding]
            for row in range(ROWS_PER_BATCH)
        ]
    }


def _predict(url: str, smoke_pair: tuple[str, str], batch: int) -> httpx.Response:
    return httpx.post(
        f"{url}/functions/predict",
        json=_batch(smoke_pair, batch),
        headers={QUERY_BATCH_ID_HEADER: f"ready-test:{batch}"},
        timeout=30.0,
    )


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/health/ready", timeout=10.0)


def _function_health(url: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/functions/health", json={"data": [[0], [1]]}, timeout=10.0)
    assert response.status_code == 200
    rows = response.json()["data"]
    assert [row[0] for row in rows] == [0, 1]
    assert rows[0][1] == rows[1][1]
    summary: dict[str, Any] = rows[0][1]
    return summary


def _limit_file_size(pid: int, limit: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def test_ready_follows_failing_appends(
    gateway: tuple[ServerProcess, str], tmp_path: Path, smoke_pair: tuple[str, str]
) -> None:
    """Appends over a file size limit: 503 from readiness and FN_HEALTH, then recovery."""
    server, url = gateway
    for batch in range(3):
        assert _predict(url, smoke_pair, batch).status_code == 200
    wal = tmp_path / "queue.sqlite3-wal"
    largest = max(path.stat().st_size for path in tmp_path.iterdir() if path.is_file())
    assert largest == wal.stat().st_size, "the log must stay below the limit"

    _limit_file_size(server.pid, wal.stat().st_size + PROBE_ROOM_BYTES)
    before = _ready(url)
    failed = _predict(url, smoke_pair, 10)
    during = _ready(url)
    summary = _function_health(url)

    assert before.status_code == 200, before.json()
    assert failed.status_code == 503
    assert failed.json()["error"]["type"] == "persistence_unavailable"
    assert during.status_code == 503
    body = during.json()
    assert body["status"] == "not_ready"
    queue = body["checks"]["queue"]
    assert queue["ok"] is False
    assert queue["detail"]["error"] == "QueueUnavailableError"
    assert queue["detail"]["failed_appends"] == 1
    assert 0 <= queue["detail"]["failed_append_age_seconds"] < APPEND_FAILURE_WINDOW_SECONDS
    assert queue["detail"]["depth"] == 3 * ROWS_PER_BATCH
    assert queue["detail"]["failed_append_pids"] == [server.pid]
    assert body["worker_pid"] == server.pid
    assert not append_status_path(STATUS_DIR, tmp_path / "queue.sqlite3").exists()
    assert summary["status"] == "unhealthy"
    assert summary["checks"]["queue"] is False
    assert summary["errors"]["queue"] == "QueueUnavailableError"
    assert summary["errors"]["model"].startswith(MODEL_DOWN_ERROR)

    _limit_file_size(server.pid, resource.RLIM_INFINITY)
    recovered = _predict(url, smoke_pair, 11)
    after = _ready(url)

    assert recovered.status_code == 200
    assert after.status_code == 200, after.json()
    queue = after.json()["checks"]["queue"]
    assert queue["ok"] is True
    assert "error" not in queue["detail"]
    assert "failed_appends" not in queue["detail"]
    assert queue["detail"]["depth"] == 4 * ROWS_PER_BATCH
    assert _function_health(url)["errors"].keys() == {"model"}


def _probe_workers(
    url: str, probes_per_worker: int = 3, timeout: float = 60.0
) -> dict[int, list[Any]]:
    """Probe readiness until each of two workers served ``probes_per_worker`` probes.

    Stops after ``timeout`` seconds even when one worker served fewer or none.

    Returns:
        The response bodies with their status codes, by the pid of the worker that served them.
    """
    by_worker: dict[int, list[Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # A new connection per probe lets the kernel hand it to either worker.
        response = httpx.get(f"{url}/health/ready", headers={"connection": "close"}, timeout=10.0)
        body = response.json()
        by_worker.setdefault(body["worker_pid"], []).append((response.status_code, body))
        if len(by_worker) >= 2 and all(
            len(bodies) >= probes_per_worker for bodies in by_worker.values()
        ):
            break
    return by_worker


@pytest.mark.slow
def test_ready_shared_by_two_workers(tmp_path: Path, smoke_pair: tuple[str, str]) -> None:
    """An append failure in one of two workers: probes of both report it until the window ends."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    status_file = append_status_path(STATUS_DIR, tmp_path / "queue.sqlite3")
    server, url = start_gateway(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        tmp_path / "no-artifact",
        GATEWAY_STORE_RAW_EVIDENCE="true",
        GATEWAY_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    try:
        before = _probe_workers(url)
        assert status_file.exists()
        assert len(before) == 2
        for pid, bodies in before.items():
            assert [status for status, _ in bodies] == [200] * len(bodies), (pid, bodies)
        for batch in range(3):
            assert _predict(url, smoke_pair, batch).status_code == 200
        wal = tmp_path / "queue.sqlite3-wal"
        failing_pid, healthy_pid = sorted(before)

        _limit_file_size(failing_pid, wal.stat().st_size + PROBE_ROOM_BYTES)
        predict_statuses = []
        for batch in range(10, 40):
            predict_statuses.append(_predict(url, smoke_pair, batch).status_code)
            if predict_statuses[-1] == 503:
                break
        during = _probe_workers(url)
        summaries = [_function_health(url) for _ in range(6)]
        _limit_file_size(failing_pid, resource.RLIM_INFINITY)

        assert predict_statuses[-1] == 503
        assert set(predict_statuses[:-1]) <= {200}
        assert set(during) == {failing_pid, healthy_pid}
        for pid, bodies in during.items():
            for status, body in bodies:
                queue = body["checks"]["queue"]
                assert status == 503, (pid, body)
                assert body["status"] == "not_ready"
                assert queue["ok"] is False
                assert queue["detail"]["error"] == "QueueUnavailableError"
        for _, body in during[healthy_pid]:
            detail = body["checks"]["queue"]["detail"]
            assert detail["failed_appends"] == 1
            assert detail["failed_append_pids"] == [failing_pid]
            assert 0 <= detail["failed_append_age_seconds"] < APPEND_FAILURE_WINDOW_SECONDS
        for summary in summaries:
            assert summary["status"] == "unhealthy"
            assert summary["errors"]["queue"] == "QueueUnavailableError"
            assert summary["errors"]["model"].startswith(MODEL_DOWN_ERROR)

        # The failure's age at the latest probe, so the sleep ends just after its window.
        age = during[healthy_pid][-1][1]["checks"]["queue"]["detail"]["failed_append_age_seconds"]
        time.sleep(APPEND_FAILURE_WINDOW_SECONDS - age + 1.0)
        after = _probe_workers(url)

        assert set(after) == {failing_pid, healthy_pid}
        for pid, bodies in after.items():
            for status, body in bodies:
                queue = body["checks"]["queue"]
                assert status == 200, (pid, body)
                assert queue["ok"] is True
                assert "error" not in queue["detail"]
                assert "failed_appends" not in queue["detail"]
    finally:
        server.stop()

    assert not status_file.exists()


def _open_descriptors_of(path: Path) -> list[str]:
    """Return this process's open descriptors that refer to ``path``, deleted or not."""
    fd_dir = Path("/proc/self/fd")
    targets = []
    for entry in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            targets.append(str(entry.readlink()))
    return [target for target in targets if target.startswith(str(path))]


class StartUpError(RuntimeError):
    """The error that the test puts in place of one start-up step."""


def _fail_start_up(*_args: object, **_kwargs: object) -> None:
    raise StartUpError


@pytest.mark.parametrize("step", ["PredictionQueue", "FeatureExtractor", "build_scorer"])
async def test_failed_start_releases_status_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A start-up that fails after attaching closes the status file and frees its slot."""
    # The queue opens its file on first use, so no real path makes start-up fail: each case
    # replaces one start-up step with one that raises.
    monkeypatch.setattr(f"evidence_gateway.app.{step}", _fail_start_up)
    queue_path = tmp_path / "queue.sqlite3"
    settings = Settings(
        queue_path=queue_path,
        workers=2,
        append_status_dir=tmp_path,
        prometheus_multiproc_dir=tmp_path,
        extraction_workers=1,
        local_mode=True,
    )
    # Nothing listens on this port; the scorer is never started in these cases anyway.
    model_settings = client_settings(f"http://127.0.0.1:{free_port()}")
    status_path = append_status_path(tmp_path, queue_path)
    switch_interval = sys.getswitchinterval()
    app = create_app(settings, model_client_settings=model_settings)

    with pytest.raises(StartUpError):
        async with app.router.lifespan_context(app):
            pass

    assert _open_descriptors_of(status_path) == []
    assert not status_path.exists()
    assert sys.getswitchinterval() == switch_interval
    # The slot must count as free again, not as owned by a live worker of this process, so
    # the next attach rewrites the file and takes slot 0.
    shared_file = AppendStatusFile.attach(status_path, workers=2)
    try:
        assert status_path.read_bytes()[64:68] == struct.pack("<I", os.getpid())
    finally:
        shared_file.close()


def _status_files_of(pid: int) -> list[str]:
    """Return the status files that process ``pid`` has open, with " (deleted)" if unlinked."""
    targets = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            targets.append(str(entry.readlink()))
    return [target for target in targets if "evidence-gateway-append-status-" in target]


def _wait_for_new_worker(url: str, known: set[int], timeout: float = 30.0) -> int:
    """Probe readiness until a worker pid outside ``known`` serves one; return that pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{url}/health/ready", headers={"connection": "close"}, timeout=5)
            pid = response.json()["worker_pid"]
            if pid not in known:
                return int(pid)
        time.sleep(0.1)
    msg = f"no worker other than {sorted(known)} served a probe within {timeout} s"
    raise AssertionError(msg)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["status_file_deleted", "queue_symlink_moved"])
def test_restarted_worker_shares_status_file(tmp_path: Path, change: str) -> None:
    """A worker restarted after its status file or queue symlink changed shares one file."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    link = tmp_path / "queue-dir"
    link.symlink_to(tmp_path / "first")
    status_file = append_status_path(STATUS_DIR, tmp_path / "first" / "queue.sqlite3")
    server, url = start_gateway(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        tmp_path / "no-artifact",
        GATEWAY_QUEUE_PATH=str(link / "queue.sqlite3"),
        GATEWAY_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    try:
        before = _probe_workers(url, probes_per_worker=1)
        assert len(before) == 2
        assert status_file.exists()
        if change == "status_file_deleted":
            # As systemd's RemoveIPC=yes does when the service user's last session ends.
            status_file.unlink()
        else:
            link.unlink()
            link.symlink_to(tmp_path / "second")
        killed_pid, kept_pid = sorted(before)
        os.kill(killed_pid, signal.SIGKILL)
        restarted_pid = _wait_for_new_worker(url, set(before))
        after = _probe_workers(url)

        assert set(after) == {kept_pid, restarted_pid}
        for pid, bodies in after.items():
            assert [status for status, _ in bodies] == [200] * len(bodies), (pid, bodies)
        assert status_file.exists()
        for pid in (kept_pid, restarted_pid):
            assert _status_files_of(pid) == [str(status_file)], pid
        data = status_file.read_bytes()
        owners = {struct.unpack_from("<I", data, 64 + 64 * slot)[0] for slot in range(63)}
        assert {kept_pid, restarted_pid} <= owners
    finally:
        server.stop()

    assert not status_file.exists()
