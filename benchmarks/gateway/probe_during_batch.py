"""Measure how long a liveness probe waits while the gateway scores large batches.

Run: ``.venv/bin/python benchmarks/gateway/probe_during_batch.py``. It starts a model server
and, for each extraction executor (thread and process pool), a gateway on free ports, sends
service-function batches of large Rx reports from two clients, probes ``/health/live`` every
20 ms meanwhile and prints the probe latencies.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from evidence_gateway.testing import start_gateway, start_model_server
from evidence_synthetic import generate_rx_report


def build_batch(rows: int, fills: int) -> list[list[Any]]:
    """Rows of the service-function protocol with one large Rx report each."""
    rng = np.random.default_rng(5)
    report = generate_rx_report(rng, fills).decode("utf-8")
    return [[i, f"PROBE-{i:04d}", None, report] for i in range(rows)]


def measure(gateway_url: str, batch: list[list[Any]], batches: int) -> dict[str, float]:
    """Score ``batches`` batches from two threads while probing liveness; return latencies."""
    probe_ms: list[float] = []
    done = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=gateway_url, timeout=120.0) as client:
            for _ in range(batches):
                client.post("/functions/predict", json={"data": batch}).raise_for_status()

    senders = [threading.Thread(target=send) for _ in range(2)]
    started = time.perf_counter()
    for sender in senders:
        sender.start()

    def wait_senders() -> None:
        for sender in senders:
            sender.join()
        done.set()

    threading.Thread(target=wait_senders).start()
    with httpx.Client(base_url=gateway_url, timeout=30.0) as probe:
        while not done.is_set():
            before = time.perf_counter()
            probe.get("/health/live").raise_for_status()
            probe_ms.append((time.perf_counter() - before) * 1000.0)
            time.sleep(0.02)
    elapsed = time.perf_counter() - started
    return {
        "batches_per_second": 2 * batches / elapsed,
        "probe_p50_ms": statistics.median(probe_ms),
        "probe_max_ms": max(probe_ms),
        "probes": float(len(probe_ms)),
    }


def main() -> None:
    """Print probe latencies for the thread and the process extraction pool."""
    rows, fills, batches = 100, 150, 3
    batch = build_batch(rows, fills)
    body_mb = len(str(batch)) / 1e6
    print(f"batch: {rows} rows x {fills} fills, about {body_mb:.1f} MB; 2 clients x {batches}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        artifact = Path(sys.argv[1]) if len(sys.argv) > 1 else directory / "builtin"
        model, model_url = start_model_server(directory, artifact)
        try:
            for executor in ("thread", "process"):
                gateway, url = start_gateway(
                    directory / executor if (directory / executor).mkdir() is None else directory,
                    model_url,
                    artifact,
                    GATEWAY_EXTRACTION_EXECUTOR=executor,
                    GATEWAY_QUEUE_MAX_DEPTH="1000000",
                )
                try:
                    result = measure(url, batch, batches)
                finally:
                    gateway.stop()
                print(executor, {key: round(value, 1) for key, value in result.items()})
        finally:
            model.stop()


if __name__ == "__main__":
    main()
