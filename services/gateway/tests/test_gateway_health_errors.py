"""FN_HEALTH names why the model check failed: the model client's error kind and the circuit.

The gateway and the fake model service (``fake_model_service.py``) run as real processes on
127.0.0.1. Two failed calls open the circuit, and its 300 s cooldown keeps it open for the test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.testing import ServerProcess, free_port, start_gateway

FAKE_SERVICE = Path(__file__).with_name("fake_model_service.py")
FAILURES_TO_OPEN = 2


@pytest.fixture
def run_processes(tmp_path: Path) -> Iterator[Any]:
    """Start the fake model service and gateways on demand, and stop them all at the end."""
    started: list[ServerProcess] = []

    def run_model(*args: str) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = ServerProcess(
            [sys.executable, str(FAKE_SERVICE), str(port), "V7", *args],
            ready_url=f"{url}/health",
            log_path=tmp_path / "fake-model.log",
        )
        started.append(server.start())
        return url

    def run_gateway(model_url: str, health_max_age_seconds: float) -> str:
        directory = tmp_path / f"gateway-{len(started)}"
        directory.mkdir()
        server, url = start_gateway(
            directory,
            model_url,
            tmp_path / "no-artifact",
            MODEL_CLIENT_BREAKER_FAILURE_THRESHOLD=str(FAILURES_TO_OPEN),
            MODEL_CLIENT_BREAKER_COOLDOWN_SECONDS="300",
            MODEL_CLIENT_MAX_RETRIES="0",
            MODEL_CLIENT_HEALTH_MAX_AGE_SECONDS=str(health_max_age_seconds),
        )
        started.append(server)
        return url

    yield run_model, run_gateway
    for server in reversed(started):
        server.stop()


def _open_circuit(url: str, smoke_pair: tuple[str, str]) -> None:
    """Send enough predictions to open the circuit, each of which gets the rule-based score."""
    mib, rx = smoke_pair
    for number in range(FAILURES_TO_OPEN):
        item = {"policy_number": f"HEALTH-{number}", "mib_xml": mib, "rx_xml": rx}
        response = httpx.post(f"{url}/v1/predict", json=item, timeout=10.0)
        assert response.status_code == 200
        assert response.json()["model_version"] == "RULE_BASED"


def _health_summary(url: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/functions/health", json={"data": [[0]]}, timeout=10.0)
    assert response.status_code == 200
    [[number, summary]] = response.json()["data"]
    assert number == 0
    result: dict[str, Any] = summary
    return result


def _model_check(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/health/ready", timeout=10.0)
    assert response.status_code == 200
    check: dict[str, Any] = response.json()["checks"]["model"]
    return check


def test_health_invalid_responses_name_kind(
    run_processes: Any, smoke_pair: tuple[str, str]
) -> None:
    """Probabilities sent as strings: FN_HEALTH gives invalid_response and the open circuit."""
    run_model, run_gateway = run_processes
    # A long maximum age keeps the failed call as the last observation, as between two probes.
    url = run_gateway(run_model("--string-probabilities"), health_max_age_seconds=300)

    _open_circuit(url, smoke_pair)
    summary = _health_summary(url)
    check = _model_check(url)

    assert summary["status"] == "degraded"
    assert summary["checks"]["model"] is False
    assert summary["errors"] == {"model": "invalid_response, circuit open"}
    assert check["detail"]["last_error_kind"] == "invalid_response"
    assert check["detail"]["circuit_state"] == "open"
    assert check["detail"]["error"] == "invalid_response, circuit open"


def test_health_open_circuit_after_probe(run_processes: Any, smoke_pair: tuple[str, str]) -> None:
    """A successful GET /health clears the error kind, but FN_HEALTH still names the circuit."""
    run_model, run_gateway = run_processes
    url = run_gateway(run_model("--string-probabilities"), health_max_age_seconds=0)

    _open_circuit(url, smoke_pair)
    summary = _health_summary(url)

    assert summary["status"] == "degraded"
    assert summary["errors"] == {
        "model": "circuit open after failed model calls, although the last GET /health succeeded"
    }


def test_health_model_down_names_kind(run_processes: Any, smoke_pair: tuple[str, str]) -> None:
    """Nothing on the model port: model_unavailable, first with the circuit closed, then open."""
    _, run_gateway = run_processes
    url = run_gateway(f"http://127.0.0.1:{free_port()}", health_max_age_seconds=0)

    before = _health_summary(url)
    _open_circuit(url, smoke_pair)
    after = _health_summary(url)

    assert before["status"] == "degraded"
    assert before["errors"] == {"model": "model_unavailable, circuit closed"}
    assert after["errors"] == {"model": "model_unavailable, circuit open"}
    assert _model_check(url)["detail"]["error"] == "model_unavailable, circuit open"


def test_health_all_checks_pass_no_errors(run_processes: Any) -> None:
    """A model service that returns numbers: healthy, every check true, no errors."""
    run_model, run_gateway = run_processes
    url = run_gateway(run_model(), health_max_age_seconds=0)

    summary = _health_summary(url)

    assert summary["status"] == "healthy"
    assert set(summary["checks"].values()) == {True}
    assert summary["errors"] == {}
    assert "error" not in _model_check(url)["detail"]
