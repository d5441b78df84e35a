"""/metrics aggregates every uvicorn worker when PROMETHEUS_MULTIPROC_DIR is set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from evidence_gateway.metrics import render_metrics
from evidence_gateway.testing import ServerProcess, script_path, start_gateway
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow


def _predictions_total(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "evidence_gateway_predictions_total":
                total += sample.value
    return total


def _two_worker_gateway(model_server_url: str, tmp_path: Path) -> tuple[ServerProcess, str]:
    """Start a real gateway with two workers sharing ``tmp_path/prometheus``."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir(exist_ok=True)
    return start_gateway(
        tmp_path,
        model_server_url,
        tmp_path / "no-model",
        GATEWAY_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )


def _predict(url: str, count: int, first: int = 0) -> None:
    for index in range(first, first + count):
        # A new connection per request lets the kernel hand requests to either worker.
        response = httpx.post(
            f"{url}/v1/predict",
            json={"policy_number": f"MP-{index}", "mib_xml": None, "rx_xml": "<r/>"},
            headers={"connection": "close"},
        )
        assert response.status_code == 200


def test_metrics_sum_over_two_workers(model_server_url: str, tmp_path: Path) -> None:
    """Predictions spread over two workers read as their total on every scrape."""
    metrics_dir = tmp_path / "prometheus"
    gateway, url = _two_worker_gateway(model_server_url, tmp_path)
    try:
        # The gateway is ready once one worker responds. The other may still be starting, or the
        # kernel may hand a whole batch to one worker. So batches continue until both workers
        # have written metrics, for at most the 60 s that ServerProcess allows a start.
        deadline = time.monotonic() + 60.0
        sent = 0
        worker_files: set[str] = set()
        while time.monotonic() < deadline and len(worker_files) < 2:
            _predict(url, 10, first=sent)
            sent += 10
            worker_files = {path.name.split("_")[-1] for path in metrics_dir.glob("*.db")}
        scrapes = [
            _predictions_total(httpx.get(f"{url}/metrics", headers={"connection": "close"}).text)
            for _ in range(6)
        ]
    finally:
        gateway.stop()

    assert len(worker_files) >= 2
    assert scrapes == [float(sent)] * 6


_WORKER = (
    "import sys, time\n"
    "from evidence_gateway import metrics\n"
    "from evidence_model_client.metrics import ModelMetrics\n"
    "from prometheus_client import REGISTRY\n"
    "ModelMetrics(REGISTRY).circuit_state.set(2)\n"
    "metrics.PREDICTIONS.labels('API', 'REGISTRY_V2').inc(3)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _samples(text: str, name: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_killed_worker_gauge_dropped(tmp_path: Path) -> None:
    """A worker killed with SIGKILL leaves its counters but not its live gauges."""
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        alive = render_metrics(tmp_path).decode()
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        dead = render_metrics(tmp_path).decode()
    finally:
        worker.kill()
        worker.wait(timeout=10)
        if worker.stdout is not None:
            worker.stdout.close()

    assert _samples(alive, "evidence_model_circuit_state") == [2.0]
    assert _samples(dead, "evidence_model_circuit_state") == []
    assert _samples(dead, "evidence_gateway_predictions_total") == [3.0]


def _queue_depths(url: str, scrapes: int) -> list[float]:
    depths = []
    with httpx.Client(base_url=url) as client:  # one kept-alive connection, as Prometheus uses
        for _ in range(scrapes):
            depths.extend(_samples(client.get("/metrics").text, "evidence_gateway_queue_depth"))
    return depths


def test_queue_depth_current_over_two_workers(model_server_url: str, tmp_path: Path) -> None:
    """Every scrape reads the queue depth of that moment, whichever worker serves it."""
    gateway, url = _two_worker_gateway(model_server_url, tmp_path)
    try:
        _predict(url, 5)
        # New connections, so that both workers serve scrapes and keep their own state.
        before = [
            value
            for _ in range(6)
            for value in _samples(
                httpx.get(f"{url}/metrics", headers={"connection": "close"}).text,
                "evidence_gateway_queue_depth",
            )
        ]
        drained = subprocess.run(
            [script_path("evidence-persistence"), "worker", "--once"],
            env={
                **os.environ,
                "PERSISTENCE_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
                "PERSISTENCE_STORE_PATH": str(tmp_path / "store.sqlite3"),
            },
            capture_output=True,
            timeout=120,
            check=False,
        )
        after = _queue_depths(url, 6)
    finally:
        gateway.stop()

    assert drained.returncode == 0, drained.stdout[-2000:]
    assert before == [5.0] * 6
    assert after == [0.0] * 6


def test_restart_starts_counters_at_zero(model_server_url: str, tmp_path: Path) -> None:
    """A gateway restarted on the same directory does not report its previous run's counts."""
    metrics_dir = tmp_path / "prometheus"
    gateway, url = _two_worker_gateway(model_server_url, tmp_path)
    try:
        _predict(url, 4)
        before_stop = _predictions_total(httpx.get(f"{url}/metrics").text)
    finally:
        gateway.stop()
    (metrics_dir / "notes.txt").write_text("kept", encoding="utf-8")

    gateway, url = _two_worker_gateway(model_server_url, tmp_path)
    try:
        after_restart = _predictions_total(httpx.get(f"{url}/metrics").text)
        _predict(url, 1)
        after_one_more = _predictions_total(httpx.get(f"{url}/metrics").text)
    finally:
        gateway.stop()

    assert 4.0 == before_stop
    assert 0.0 == after_restart
    assert 1.0 == after_one_more
    assert "kept" == (metrics_dir / "notes.txt").read_text(encoding="utf-8")
