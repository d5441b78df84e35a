"""A queue file deleted under a running gateway and worker loses no acknowledged prediction."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from evidence_gateway.snowflake_headers import QUERY_BATCH_ID_HEADER
from evidence_gateway.testing import ServerProcess, free_port, start_gateway, start_worker

pytestmark = pytest.mark.slow


def _predict(url: str, smoke_pair: tuple[str, str], batch: int, rows: int) -> httpx.Response:
    mib, rx = smoke_pair
    return httpx.post(
        f"{url}/functions/predict",
        json={"data": [[row, f"MOVED-{batch}-{row}", mib, rx] for row in range(rows)]},
        headers={QUERY_BATCH_ID_HEADER: f"moved-test:{batch}"},
        timeout=30.0,
    )


def _ids(response: httpx.Response) -> list[str]:
    return [str(row[1]["prediction_id"]) for row in response.json()["data"]]


def _stored(store: Path) -> set[str]:
    if not store.is_file():
        return set()
    connection = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT PREDICTION_ID FROM ML_MODELS__MODEL_PREDICTIONS")
        return {str(row[0]) for row in rows.fetchall()}
    except sqlite3.OperationalError:
        return set()
    finally:
        connection.close()


def _delete_with_sidecars(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _wait_stored(store: Path, expected: set[str], timeout: float = 30.0) -> set[str]:
    deadline = time.monotonic() + timeout
    stored = _stored(store)
    while not expected <= stored and time.monotonic() < deadline:
        time.sleep(0.1)
        stored = _stored(store)
    return stored


def _start_stack(directory: Path) -> tuple[ServerProcess, str, ServerProcess]:
    """Start a gateway without a model server, and a worker, sharing ``directory``."""
    gateway, url = start_gateway(
        directory, f"http://127.0.0.1:{free_port()}", directory / "no-artifact"
    )
    return gateway, url, start_worker(directory)


def _gateway_events(directory: Path, marker: str) -> list[dict[str, object]]:
    """Return the gateway log events whose line contains ``marker``."""
    return [
        json.loads(line)
        for log in directory.glob("gateway-*.log")
        for line in log.read_text(encoding="utf-8").splitlines()
        if marker in line
    ]


@pytest.mark.parametrize("rows_after", [0, 1, 5])
def test_queue_deleted_under_gateway(
    tmp_path: Path, smoke_pair: tuple[str, str], rows_after: int
) -> None:
    """Every prediction acknowledged with 200 before and after the delete reaches the store."""
    gateway, url, worker = _start_stack(tmp_path)
    queue = tmp_path / "queue.sqlite3"
    store = tmp_path / "store.sqlite3"
    answered: set[str] = set()
    statuses: list[int] = []
    try:
        for batch in range(3):
            response = _predict(url, smoke_pair, batch, rows=1)
            statuses.append(response.status_code)
            answered.update(_ids(response))
        assert _wait_stored(store, answered) >= answered

        _delete_with_sidecars(queue)
        for batch in range(3, 6):
            if rows_after == 0:
                break
            response = _predict(url, smoke_pair, batch, rows=rows_after)
            statuses.append(response.status_code)
            if response.status_code == 200:
                answered.update(_ids(response))
        ready = httpx.get(f"{url}/health/ready", timeout=10.0)
        stored = _wait_stored(store, answered)
    finally:
        worker.stop()
        gateway.stop()

    moved_events = _gateway_events(tmp_path, "queue file moved")
    assert statuses == [200] * len(statuses)
    # The first append or readiness probe of each gateway process after the delete finds the
    # file moved: missing, replaced once the worker has created the path's file again, or
    # reopened when another thread of the process found it first.
    assert moved_events
    assert {event["reason"] for event in moved_events} <= {"missing", "replaced", "reopened"}
    assert {event["action"] for event in moved_events} <= {"append", "readiness probe"}
    assert {event["queue_path"] for event in moved_events} == {str(queue)}
    assert ready.status_code == 200, ready.json()
    assert queue.is_file()
    assert answered <= stored
    assert len(answered) == 3 + 3 * rows_after


@pytest.mark.parametrize("rows", [1, 4])
def test_queue_wal_deleted_under_gateway(
    tmp_path: Path, smoke_pair: tuple[str, str], rows: int
) -> None:
    """Deleting only the queue's -wal and -shm: the gateway returns 503 and fails readiness.

    Records appended after the delete would exist only in the deleted -wal, which a killed
    process loses, so no prediction is acknowledged with 200 after it.
    """
    gateway, url, worker = _start_stack(tmp_path)
    queue = tmp_path / "queue.sqlite3"
    store = tmp_path / "store.sqlite3"
    answered: set[str] = set()
    statuses_after: list[int] = []
    try:
        response = _predict(url, smoke_pair, 0, rows=1)
        assert response.status_code == 200
        answered.update(_ids(response))
        assert _wait_stored(store, answered) >= answered

        for suffix in ("-wal", "-shm"):
            Path(f"{queue}{suffix}").unlink()
        for batch in range(1, 4):
            statuses_after.append(_predict(url, smoke_pair, batch, rows=rows).status_code)
        ready = httpx.get(f"{url}/health/ready", timeout=10.0)
    finally:
        worker.stop()
        gateway.stop()

    refused = _gateway_events(tmp_path, "path unsafe to open again")
    assert statuses_after == [503] * 3
    assert ready.status_code == 503, ready.json()
    assert refused
    assert {event["queue_path"] for event in refused} == {str(queue)}
    assert {event["reason"] for event in refused} <= {"wal_missing", "shm_missing"}
    assert _stored(store) == answered
