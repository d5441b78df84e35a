"""Crashes and outages under concurrent traffic, with an exact count of persisted predictions.

One scenario on real processes (model server, gateway, persistence worker):

1. four clients score applicants continuously;
2. the worker's file writes fail for 3 s, as on a full disk (a sink and queue outage), then
   another connection holds the store's write lock for 3 s (a stalled sink);
3. the worker is killed with SIGKILL in the middle of its work and started again;
4. the gateway is killed with SIGKILL while requests are in flight.

Afterwards every acknowledged prediction (HTTP 200 with a prediction_id) is in the store exactly
once. Rows for requests that never got a response may exist too, at most one per client that was
waiting when the gateway died.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from evidence_persistence import PredictionQueue
from reliability_kit import (
    CANARY_MIB,
    CANARY_RX,
    PipedProcess,
    assert_logs_clean,
    build_record,
    start_piped_gateway,
    start_piped_worker,
)

pytestmark = pytest.mark.slow

CLIENTS = 4
FAST_WORKER = {
    "PERSISTENCE_BATCH_SIZE": "20",
    "PERSISTENCE_LEASE_SECONDS": "1",
    "PERSISTENCE_POLL_INTERVAL_SECONDS": "0.02",
    "PERSISTENCE_RETRY_BACKOFF_MAX_SECONDS": "0.5",
}
# Long enough for several failed drain attempts with the worker's 0.5 s maximum back-off.
SINK_OUTAGE_SECONDS = 3.0
# Shorter than the sink's busy timeout and retries: the worker waits instead of failing.
SINK_STALL_SECONDS = 3.0


class Traffic:
    """Clients that post /v1/predict in a loop and record what was acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: dict[str, str] = {}
        self.unanswered = 0
        self.other_statuses: list[int] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(client,)) for client in range(CLIENTS)
        ]

    def start(self) -> None:
        """Start every client."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the clients and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30.0)

    def count(self) -> int:
        """Acknowledged predictions so far."""
        with self._lock:
            return len(self.acknowledged)

    def _run(self, client: int) -> None:
        sequence = 0
        with httpx.Client(base_url=self.url, timeout=20.0) as http:
            while not self._stop.is_set():
                sequence += 1
                policy = f"K-{client}-{sequence}"
                body = {"policy_number": policy, "mib_xml": CANARY_MIB, "rx_xml": CANARY_RX}
                try:
                    response = http.post("/v1/predict", json=body)
                except httpx.HTTPError:
                    with self._lock:
                        self.unanswered += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.acknowledged[response.json()["prediction_id"]] = policy
                    else:
                        self.other_statuses.append(response.status_code)


def _wait_for(condition: object, timeout: float, description: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}")
        time.sleep(0.05)


def _logged(directory: Path, fragment: str) -> bool:
    return any(fragment in path.read_text() for path in directory.glob("worker-*.log"))


def _stored(store: Path) -> list[str]:
    connection = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True, timeout=10.0)
    try:
        rows = connection.execute(
            "SELECT PREDICTION_ID FROM ML_MODELS__MODEL_PREDICTIONS WHERE POLICY_NUMBER LIKE 'K-%'"
        ).fetchall()
    except sqlite3.OperationalError:
        # The worker creates the file first and its tables a moment later.
        rows = []
    finally:
        connection.close()
    return [row[0] for row in rows]


def _run_scenario(
    tmp_path: Path, url: str, gateway: PipedProcess, workers: list[PipedProcess]
) -> Traffic:
    """Run traffic through the outage, the stall and both kills; return the clients' record."""
    store = tmp_path / "store.sqlite3"
    traffic = Traffic(url)
    try:
        traffic.start()
        _wait_for(lambda: traffic.count() >= 20 and store.is_file(), 60.0, "first predictions")
        _wait_for(lambda: len(_stored(store)) > 0, 30.0, "first stored rows")

        # Sink outage: the worker's file writes fail as on a full disk, while traffic goes on.
        worker_process = psutil.Process(workers[0].pid)
        limit = worker_process.rlimit(psutil.RLIMIT_FSIZE)
        acked_before_outage = traffic.count()
        worker_process.rlimit(psutil.RLIMIT_FSIZE, (1, limit[1]))
        try:
            time.sleep(SINK_OUTAGE_SECONDS)
        finally:
            worker_process.rlimit(psutil.RLIMIT_FSIZE, limit)
        assert traffic.count() > acked_before_outage, "the gateway stopped during the outage"
        _wait_for(lambda: _logged(tmp_path, "unavailable"), 10.0, "the worker to see the outage")

        # Sink stall: another connection holds the store's write lock. The worker waits and
        # retries. The gateway only appends to the queue, so it keeps scoring.
        holder = sqlite3.connect(store, isolation_level=None, timeout=10.0)
        try:
            holder.execute("BEGIN IMMEDIATE")
            acked_before_stall = traffic.count()
            time.sleep(SINK_STALL_SECONDS)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        assert traffic.count() > acked_before_stall, "the gateway stopped during the stall"

        # Worker crash in the middle of draining, then a fresh worker.
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10.0)
        time.sleep(0.5)
        workers.append(start_piped_worker(tmp_path, **FAST_WORKER))
        _wait_for(lambda: traffic.count() >= acked_before_outage + 60, 60.0, "more traffic")

        # Gateway crash with requests in flight.
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=10.0)
    finally:
        traffic.stop()
    return traffic


def test_crash_kills_and_sink_outage_lose_no_acknowledged_prediction(
    tmp_path: Path, model_server: str, empty_artifact_dir: Path
) -> None:
    """Sink outage, worker SIGKILL and gateway SIGKILL under traffic: acked == stored."""
    gateway, url = start_piped_gateway(
        tmp_path, model_server, empty_artifact_dir, MODEL_CLIENT_DEADLINE_MS="3000"
    )
    workers: list[PipedProcess] = []
    try:
        workers.append(start_piped_worker(tmp_path, **FAST_WORKER))
        traffic = _run_scenario(tmp_path, url, gateway, workers)
        queue = PredictionQueue(tmp_path / "queue.sqlite3")
        _wait_for(lambda: queue.depth() == 0, 60.0, "the worker to drain the queue")
        dead_letters = queue.dead_letter_count()
        queue.close()
    finally:
        gateway.stop()
        for worker in workers:
            worker.stop()

    store = tmp_path / "store.sqlite3"
    stored = _stored(store)
    acknowledged = set(traffic.acknowledged)
    print(
        f"acknowledged={len(acknowledged)} stored={len(stored)} "
        f"unanswered={traffic.unanswered} other={traffic.other_statuses}"
    )
    assert 0 == dead_letters
    assert [] == traffic.other_statuses
    assert len(stored) == len(set(stored)), "a prediction was stored twice"
    assert set() == acknowledged - set(stored), "an acknowledged prediction was lost"
    assert len(set(stored) - acknowledged) <= CLIENTS
    assert_logs_clean(list(tmp_path.glob("*.log")))


def test_crash_worker_sigterm_finishes_batch(tmp_path: Path) -> None:
    """SIGTERM in the middle of a drain: the worker finishes its batch and leaves no lease."""
    total = 3_000
    batch = 500
    queue = PredictionQueue(tmp_path / "queue.sqlite3")
    queue.append_many(build_record(i) for i in range(total))
    worker = start_piped_worker(tmp_path, PERSISTENCE_BATCH_SIZE=str(batch))
    try:
        _wait_for(lambda: _logged(tmp_path, "batch processed"), 60.0, "the first batch")
        worker.send_signal(signal.SIGTERM)
        status = worker.wait(timeout=30.0)
    finally:
        worker.stop()

    connection = sqlite3.connect(tmp_path / "store.sqlite3")
    stored = connection.execute("SELECT COUNT(*) FROM ML_MODELS__MODEL_PREDICTIONS").fetchone()[0]
    connection.close()
    connection = sqlite3.connect(tmp_path / "queue.sqlite3")
    leased = connection.execute(
        "SELECT COUNT(*) FROM queue_items WHERE lease_owner IS NOT NULL"
    ).fetchone()[0]
    connection.close()
    print(f"worker stopped after storing {stored} of {total} records")
    log = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))

    assert 0 == status
    assert log.index("stop requested") < log.index("worker stopped")
    assert 0 == stored % batch, "a batch was written in part"
    assert stored >= batch
    assert 0 == leased
    assert total == stored + queue.depth()
