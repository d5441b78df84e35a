"""A model service whose /health reports an invalid model version is treated as misconfigured.

The gateway and the fake model service (``fake_model_service.py``) run as real processes on
127.0.0.1. The version would otherwise reach the Prometheus labels, the logs, /functions/health
and every prediction, so an overlong or odd one must reach none of them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.testing import ServerProcess, free_port, start_gateway

FAKE_SERVICE = Path(__file__).with_name("fake_model_service.py")
OVERLONG = "V" + "9" * 5000


class ModelService:
    """The fake model service on one port, restartable with another version."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: ServerProcess | None = None

    def start(self, version: str) -> None:
        """Start the service reporting ``version``, after stopping a running one."""
        self.stop()
        self._process = ServerProcess(
            [sys.executable, str(FAKE_SERVICE), str(self.port), version],
            ready_url=f"{self.url}/health",
            log_path=self.directory / "fake-model.log",
        ).start()

    def stop(self) -> None:
        """Stop the service if it runs."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def predict_calls(self) -> int:
        """Prediction requests the running service received."""
        response = httpx.get(f"{self.url}/health", timeout=5.0)
        return int(response.headers["x-predict-calls"])


@pytest.fixture
def model_service(tmp_path: Path) -> Iterator[ModelService]:
    """A fake model service that the test starts with the version it needs."""
    service = ModelService(tmp_path)
    yield service
    service.stop()


@pytest.fixture
def gateway(tmp_path: Path, model_service: ModelService) -> Iterator[str]:
    """A gateway process in front of ``model_service`` that probes /health on every check."""
    directory = tmp_path / "gateway"
    directory.mkdir()
    server, url = start_gateway(
        directory,
        model_service.url,
        tmp_path / "no-artifact",
        MODEL_CLIENT_HEALTH_MAX_AGE_SECONDS="0",
    )
    yield url
    server.stop()


def _wait_ready_status(url: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll /health/ready until it reports ``status``, and return that body."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/health/ready", timeout=10.0).json()
        if body["status"] == status:
            return body
        time.sleep(0.1)
    msg = f"readiness did not reach {status!r} within {timeout} s; last body: {body}"
    raise AssertionError(msg)


def _predict(url: str, smoke_pair: tuple[str, str], policy: str) -> dict[str, Any]:
    mib, rx = smoke_pair
    item = {"policy_number": policy, "mib_xml": mib, "rx_xml": rx}
    response = httpx.post(f"{url}/v1/predict", json=item, timeout=10.0)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _registry_labels(url: str) -> set[str]:
    """Return the distinct ``REGISTRY_*`` label values on /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    labels = set()
    for line in text.splitlines():
        start = line.find('model_version="REGISTRY_')
        if start >= 0:
            value_start = start + len('model_version="')
            labels.add(line[value_start : line.index('"', value_start)])
    return labels


def _log_text(tmp_path: Path) -> str:
    return next((tmp_path / "gateway").glob("gateway-*.log")).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("version", "quoted"),
    [
        (OVERLONG, "(5001 characters)"),
        ('V2"} 1\nfake_metric{a="b', "'V2\"} 1\\nfake_metric{a=\"b'"),
        ("V2\u00e9", "'V2\\xe9'"),
    ],
    ids=["overlong", "label_injection", "non_ascii"],
)
def test_invalid_version_falls_back(
    model_service: ModelService,
    gateway: str,
    smoke_pair: tuple[str, str],
    tmp_path: Path,
    version: str,
    quoted: str,
) -> None:
    """An invalid version: not ready naming the field, fallback, no label, no echo."""
    model_service.start(version)

    body = _wait_ready_status(gateway, "not_ready")
    prediction = _predict(gateway, smoke_pair, "INFO-1")
    [[_, summary]] = httpx.post(
        f"{gateway}/functions/health", json={"data": [[0]]}, timeout=10.0
    ).json()["data"]
    metrics_text = httpx.get(f"{gateway}/metrics", timeout=10.0).text

    check = body["checks"]["model_info"]
    assert check["ok"] is False
    assert "model_version" in check["detail"]["error"]
    assert quoted in check["detail"]["error"]
    assert len(check["detail"]["error"]) < 400
    assert body["checks"]["feature_spec"]["ok"] is True
    assert body["model_version"] is None
    assert prediction["model_version"] == "RULE_BASED"
    assert prediction["fallback_reason"] == "model_info_invalid"
    assert summary["status"] == "unhealthy"
    assert summary["errors"]["model_info"] == check["detail"]["error"]
    assert summary["model_version"] is None
    assert 'evidence_gateway_fallbacks_total{reason="model_info_invalid"} 1.0' in metrics_text
    assert 'evidence_model_fallbacks_total{reason="model_info_invalid"} 1.0' in metrics_text
    assert _registry_labels(gateway) == set()
    assert "fake_metric" not in metrics_text
    assert model_service.predict_calls() == 0
    # The log may quote an escaped prefix, but never a raw line break that starts a new line.
    assert "9" * 100 not in _log_text(tmp_path)
    assert "\nfake_metric" not in _log_text(tmp_path)


def test_versions_over_time_keep_labels_bounded(
    model_service: ModelService, gateway: str, smoke_pair: tuple[str, str]
) -> None:
    """No service, then V1, an invalid version, and V2.1-rc_3: two labels, each valid one used."""
    no_service = _predict(gateway, smoke_pair, "TIME-0")
    labels_before = _registry_labels(gateway)

    model_service.start("V1")
    _wait_ready_status(gateway, "ready")
    first = _predict(gateway, smoke_pair, "TIME-1")

    model_service.start(OVERLONG)
    invalid_body = _wait_ready_status(gateway, "not_ready")
    invalid = _predict(gateway, smoke_pair, "TIME-2")

    model_service.start("V2.1-rc_3")
    ready_body = _wait_ready_status(gateway, "ready")
    second = _predict(gateway, smoke_pair, "TIME-3")

    assert no_service["model_version"] == "RULE_BASED"
    assert no_service["fallback_reason"] == "model_unavailable"
    assert labels_before == set()
    assert first["model_version"] == "REGISTRY_V1"
    assert first["fallback_reason"] is None
    assert invalid_body["checks"]["model_info"]["ok"] is False
    assert invalid["fallback_reason"] == "model_info_invalid"
    assert ready_body["checks"]["model_info"] == {"ok": True, "detail": {}}
    assert ready_body["model_version"] == "REGISTRY_V2.1-rc_3"
    assert second["model_version"] == "REGISTRY_V2.1-rc_3"
    assert second["fallback_reason"] is None
    assert _registry_labels(gateway) == {"REGISTRY_V1", "REGISTRY_V2.1-rc_3"}
    assert model_service.predict_calls() == 1
