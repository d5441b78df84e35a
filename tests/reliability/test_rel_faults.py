"""Model and queue faults against a real gateway process, and its graceful shutdown.

The gateway talks to ``FaultyModelServer``. Its model client has a 400 ms deadline, one retry
and a breaker that opens after 3 consecutive failures for a 1.5 s cooldown, so each fault is
seen through all its phases in a few seconds:

    model fails → fallback scores with RULE_BASED and the error kind → 3 failures open the
    circuit → fallback scores with "circuit_open" and the model gets no call → the model
    recovers → after the cooldown one probe call succeeds and closes the circuit.

The last test stops the gateway with SIGTERM, so it must stay last in this file.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from evidence_persistence import PredictionQueue
from reliability_kit import (
    CANARY_MIB,
    CANARY_RX,
    FaultyModelServer,
    GatewayUnderTest,
    PipedProcess,
    assert_logs_clean,
    build_record,
    start_piped_gateway,
)

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 0.4
FAILURE_THRESHOLD = 3
COOLDOWN_SECONDS = 1.5
QUEUE_MAX_DEPTH = 5_000
# Gateway work around the model call (parsing, queue append, HTTP) on a loaded 2-core machine.
OVERHEAD_SECONDS = 1.5
REGISTRY = "REGISTRY_V9"
RULE_BASED = "RULE_BASED"


@pytest.fixture(scope="module")
def fault_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    faulty_model: FaultyModelServer,
    empty_artifact_dir: Path,
) -> Iterator[GatewayUnderTest]:
    """A gateway (no token, no worker) whose model is the faulty server."""
    directory = tmp_path_factory.mktemp("gateway-faults")
    process, url = start_piped_gateway(
        directory,
        faulty_model.url,
        empty_artifact_dir,
        MODEL_CLIENT_DEADLINE_MS=str(int(DEADLINE_SECONDS * 1000)),
        MODEL_CLIENT_MAX_RETRIES="1",
        MODEL_CLIENT_BREAKER_FAILURE_THRESHOLD=str(FAILURE_THRESHOLD),
        MODEL_CLIENT_BREAKER_COOLDOWN_SECONDS=str(COOLDOWN_SECONDS),
        GATEWAY_QUEUE_MAX_DEPTH=str(QUEUE_MAX_DEPTH),
    )
    running = GatewayUnderTest(url=url, directory=directory, process=process)
    try:
        yield running
    finally:
        process.stop()
        assert_logs_clean(list(directory.glob("*.log")))


def _predict(gateway: GatewayUnderTest, policy: str = "F-1") -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = httpx.post(
        f"{gateway.url}/v1/predict",
        json={"policy_number": policy, "mib_xml": CANARY_MIB, "rx_xml": CANARY_RX},
        timeout=30.0,
    )
    seconds = time.perf_counter() - started
    assert 200 == response.status_code, response.text[:300]
    return response.json(), seconds


def _functions(gateway: GatewayUnderTest) -> tuple[list[dict[str, Any]], float]:
    rows = [[i, f"F-{i}", CANARY_MIB, CANARY_RX] for i in range(3)]
    started = time.perf_counter()
    response = httpx.post(f"{gateway.url}/functions/predict", json={"data": rows}, timeout=30.0)
    seconds = time.perf_counter() - started
    assert 200 == response.status_code, response.text[:300]
    return [row[1] for row in response.json()["data"]], seconds


def _batch(gateway: GatewayUnderTest) -> tuple[list[dict[str, Any]], float]:
    items = [
        {"policy_number": f"F-{i}", "mib_xml": CANARY_MIB, "rx_xml": CANARY_RX} for i in range(2)
    ]
    started = time.perf_counter()
    response = httpx.post(f"{gateway.url}/v1/predict/batch", json={"items": items}, timeout=30.0)
    seconds = time.perf_counter() - started
    assert 200 == response.status_code, response.text[:300]
    return response.json()["results"], seconds


def _ready(gateway: GatewayUnderTest) -> httpx.Response:
    return httpx.get(f"{gateway.url}/health/ready", timeout=10.0)


def _restore_model(gateway: GatewayUnderTest, model: FaultyModelServer) -> None:
    """Make the model healthy and wait until the gateway scores with it again."""
    model.mode = "ok"
    model.accept()
    deadline = time.monotonic() + COOLDOWN_SECONDS + 10.0
    while time.monotonic() < deadline:
        answer, _ = _predict(gateway)
        if answer["model_version"] == REGISTRY:
            return
        time.sleep(0.2)
    pytest.fail("the gateway did not return to the model after the fault ended")


FAULTS = [
    pytest.param({"mode": "refuse"}, "model_unavailable", id="connection-refused"),
    pytest.param({"mode": "hang"}, "model_timeout", id="hang"),
    pytest.param({"mode": "slow", "delay": 2.0}, "model_timeout", id="slow"),
    pytest.param({"mode": "status", "status": 500}, "model_unavailable", id="http-500"),
    pytest.param({"mode": "status", "status": 503}, "model_unavailable", id="http-503"),
    pytest.param({"mode": "garbage"}, "invalid_response", id="garbage"),
    pytest.param({"mode": "wrong_rows"}, "invalid_response", id="wrong-row-count"),
    pytest.param({"mode": "drop"}, "model_unavailable", id="connection-dropped"),
]


def test_fault_baseline_model_scores(
    fault_gateway: GatewayUnderTest, faulty_model: FaultyModelServer
) -> None:
    """With a healthy model the gateway returns the registry version and is ready."""
    _restore_model(fault_gateway, faulty_model)
    answer, _ = _predict(fault_gateway)
    ready = _ready(fault_gateway)

    assert REGISTRY == answer["model_version"]
    assert answer["fallback_reason"] is None
    assert 200 == ready.status_code
    assert "ready" == ready.json()["status"]


@pytest.mark.parametrize(("fault", "reason"), FAULTS)
def test_fault_fallback_breaker_and_recovery(
    fault_gateway: GatewayUnderTest,
    faulty_model: FaultyModelServer,
    fault: dict[str, Any],
    reason: str,
) -> None:
    """Each fault: flagged fallback within the deadline, breaker opens, then closes again."""
    _restore_model(fault_gateway, faulty_model)
    faulty_model.delay = fault.get("delay", 0.0)
    faulty_model.status = fault.get("status", 500)
    if fault["mode"] == "refuse":
        faulty_model.refuse()
    else:
        faulty_model.mode = fault["mode"]
    bound = DEADLINE_SECONDS + OVERHEAD_SECONDS

    # Phase 1: every route falls back, flagged with the fault's error kind.
    answer, seconds = _predict(fault_gateway)
    assert (RULE_BASED, reason) == (answer["model_version"], answer["fallback_reason"])
    assert 0.0 <= answer["risk_score"] <= 1.0
    assert seconds < bound
    rows, seconds = _functions(fault_gateway)
    assert [(RULE_BASED, reason)] * 3 == [(r["model_version"], r["fallback_reason"]) for r in rows]
    assert seconds < bound
    results, seconds = _batch(fault_gateway)
    assert [RULE_BASED] * 2 == [r["model_version"] for r in results]
    assert seconds < bound

    # Phase 2: three failures opened the circuit; the model gets no call while it is open.
    calls_before = faulty_model.predict_calls
    answer, seconds = _predict(fault_gateway)
    ready = _ready(fault_gateway)
    assert (RULE_BASED, "circuit_open") == (answer["model_version"], answer["fallback_reason"])
    assert calls_before == faulty_model.predict_calls
    assert 200 == ready.status_code
    assert "degraded" == ready.json()["status"]
    assert "open" == ready.json()["checks"]["model"]["detail"]["circuit_state"]

    # Phase 3: the model recovers; after the cooldown one probe closes the circuit.
    faulty_model.mode = "ok"
    faulty_model.accept()
    time.sleep(COOLDOWN_SECONDS + 0.1)
    answer, _ = _predict(fault_gateway)
    ready = _ready(fault_gateway)
    assert REGISTRY == answer["model_version"]
    assert "ready" == ready.json()["status"]
    assert "closed" == ready.json()["checks"]["model"]["detail"]["circuit_state"]


def test_fault_flapping_model_never_fails(
    fault_gateway: GatewayUnderTest, faulty_model: FaultyModelServer
) -> None:
    """A model alternating between results and 500s: every request gets a 200, never a 5xx."""
    _restore_model(fault_gateway, faulty_model)
    faulty_model.predict_calls = 0
    faulty_model.mode = "flap"
    answers = [_predict(fault_gateway, f"FLAP-{i}") for i in range(8)]
    faulty_model.mode = "ok"

    versions = [answer["model_version"] for answer, _ in answers]
    reasons = {answer["fallback_reason"] for answer, _ in answers}
    assert [REGISTRY, RULE_BASED] * 4 == versions
    assert {None, "model_unavailable"} == reasons
    assert all(seconds < DEADLINE_SECONDS + OVERHEAD_SECONDS for _, seconds in answers)


def test_fault_queue_full_503_then_recovers(
    fault_gateway: GatewayUnderTest, faulty_model: FaultyModelServer
) -> None:
    """A full queue gives 503 with Retry-After on every route and recovers once drained."""
    _restore_model(fault_gateway, faulty_model)
    queue = PredictionQueue(fault_gateway.queue_path, max_depth=QUEUE_MAX_DEPTH)
    missing = QUEUE_MAX_DEPTH - queue.depth()
    queue.append_many(build_record(i) for i in range(missing))

    single = httpx.post(
        f"{fault_gateway.url}/v1/predict",
        json={"policy_number": "Q-1", "mib_xml": CANARY_MIB, "rx_xml": CANARY_RX},
        timeout=30.0,
    )
    rows = httpx.post(
        f"{fault_gateway.url}/functions/predict",
        json={"data": [[0, "Q-2", CANARY_MIB, CANARY_RX]]},
        timeout=30.0,
    )
    ready = _ready(fault_gateway)

    assert 503 == single.status_code
    assert "persistence_unavailable" == single.json()["error"]["type"]
    assert "1" == single.headers["retry-after"]
    assert 503 == rows.status_code
    assert 503 == ready.status_code
    assert ready.json()["checks"]["queue"]["ok"] is False

    # Drain the prefilled records, as the worker would.
    connection = sqlite3.connect(fault_gateway.queue_path, timeout=10.0)
    with connection:
        connection.execute("DELETE FROM queue_items WHERE prediction_id LIKE 'prefill-%'")
    connection.close()
    answer, _ = _predict(fault_gateway, "Q-3")
    assert REGISTRY == answer["model_version"]
    assert 200 == _ready(fault_gateway).status_code
    queue.close()


def test_fault_disk_full_503_then_recovers(
    fault_gateway: GatewayUnderTest, faulty_model: FaultyModelServer
) -> None:
    """With file writes limited to 1 byte (disk full), appends give 503; lifting it recovers."""
    _restore_model(fault_gateway, faulty_model)
    process = psutil.Process(fault_gateway.process.pid)
    original = process.rlimit(psutil.RLIMIT_FSIZE)
    process.rlimit(psutil.RLIMIT_FSIZE, (1, original[1]))
    try:
        responses = [
            httpx.post(
                f"{fault_gateway.url}/v1/predict",
                json={"policy_number": f"D-{i}", "mib_xml": CANARY_MIB, "rx_xml": CANARY_RX},
                timeout=30.0,
            )
            for i in range(3)
        ]
        ready = _ready(fault_gateway)
    finally:
        process.rlimit(psutil.RLIMIT_FSIZE, original)

    assert [503] * 3 == [response.status_code for response in responses]
    assert {"persistence_unavailable"} == {r.json()["error"]["type"] for r in responses}
    assert 503 == ready.status_code
    assert fault_gateway.process.alive
    answer, _ = _predict(fault_gateway, "D-after")
    assert REGISTRY == answer["model_version"]
    assert 200 == _ready(fault_gateway).status_code


def test_fault_sigterm_finishes_in_flight_requests(
    fault_gateway: GatewayUnderTest, faulty_model: FaultyModelServer
) -> None:
    """SIGTERM during 6 in-flight requests: all 6 get 200 and are queued, then it exits."""
    _restore_model(fault_gateway, faulty_model)
    faulty_model.mode = "slow"
    faulty_model.delay = 0.3
    assert faulty_model.delay < DEADLINE_SECONDS
    answers: list[httpx.Response | BaseException] = []
    lock = threading.Lock()

    def call(index: int) -> None:
        try:
            response = httpx.post(
                f"{fault_gateway.url}/v1/predict",
                json={"policy_number": f"TERM-{index}", "mib_xml": CANARY_MIB, "rx_xml": None},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            response = exc  # type: ignore[assignment]
        with lock:
            answers.append(response)

    rows_before = faulty_model.predict_rows
    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    # Signal only once the model has received all six rows, so each request is in flight. The
    # gateway may put concurrent requests into one model call, so rows are counted, not calls.
    deadline = time.monotonic() + 20.0
    while faulty_model.predict_rows < rows_before + 6:
        assert time.monotonic() < deadline, "the six requests never reached the model"
        time.sleep(0.005)
    process = fault_gateway.process
    assert isinstance(process, PipedProcess)
    process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=30.0)
    exit_status = process.wait(timeout=30.0)

    statuses = [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]
    assert [200] * 6 == statuses
    # uvicorn finishes its shutdown, then re-raises the signal it caught, which the gateway's
    # own SIGTERM handler turns into status 0. The lifespan's final log line shows the
    # shutdown completed.
    assert exit_status == 0
    assert "gateway stopped" in process.log_path.read_text()
    ids = {a.json()["prediction_id"] for a in answers if isinstance(a, httpx.Response)}
    connection = sqlite3.connect(fault_gateway.queue_path)
    queued = {row[0] for row in connection.execute("SELECT prediction_id FROM queue_items")}
    connection.close()
    assert ids <= queued
