"""Measure how long a liveness probe waits while the gateway scores large batches or many singles.

Run: ``.venv/bin/python benchmarks/gateway/probe_during_batch.py [ARTIFACT_DIR] [--only TEXT]``.
It starts a model server and, for each case, a gateway on free ports, and probes
``/health/live`` every 20 ms while clients send work. Two cases send service-function batches
of large Rx reports from two clients, once with the thread pool and once with the process pool.
Two cases send ``/v1/predict`` calls of the 50 KB sample from eight clients. One of them
extracts on the event loop, as the default ``GATEWAY_INLINE_EXTRACTION_MAX_BYTES`` of 64 KiB
does, and the other sends every request to the thread pool. Two cases send 24 concurrent
``/v1/predict`` calls, each with a 1.9 MB Rx report, once with the gateway's defaults and once
with CPython's 5 ms GIL switch interval and four extraction threads. ``--only`` runs the cases
whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from evidence_gateway.testing import start_gateway, start_model_server
from evidence_synthetic import generate_rx_report

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "02-diabetic"


def build_batch(rows: int, fills: int) -> list[list[Any]]:
    """Rows of the service-function protocol with one large Rx report each."""
    rng = np.random.default_rng(5)
    report = generate_rx_report(rng, fills).decode("utf-8")
    return [[i, f"PROBE-{i:04d}", None, report] for i in range(rows)]


def measure(
    gateway_url: str, path: str, body: dict[str, Any], *, clients: int, calls: int
) -> dict[str, float]:
    """Post ``body`` ``calls`` times from each of ``clients`` threads while probing liveness."""
    probe_ms: list[float] = []
    done = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=gateway_url, timeout=120.0) as client:
            for _ in range(calls):
                client.post(path, json=body).raise_for_status()

    senders = [threading.Thread(target=send) for _ in range(clients)]
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
        "requests_per_second": clients * calls / elapsed,
        "probe_p50_ms": statistics.median(probe_ms),
        "probe_max_ms": max(probe_ms),
        "probes": float(len(probe_ms)),
    }


def main() -> None:
    """Print probe latencies for each extraction set-up and workload."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", nargs="?", type=Path, help="model artifact folder")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    arguments = parser.parse_args()
    rows, fills, batches = 100, 150, 3
    batch = {"data": build_batch(rows, fills)}
    # 2,500 generated fills come to about 1.9 MB, under the default 2 MB document cap.
    large_rx = generate_rx_report(np.random.default_rng(6), 2_500).decode("utf-8")
    large_single = {"policy_number": "PROBE-LARGE", "mib_xml": None, "rx_xml": large_rx}
    single = {
        "policy_number": "PROBE-SINGLE",
        "mib_xml": (SAMPLE / "mib.xml").read_text(encoding="utf-8"),
        "rx_xml": (SAMPLE / "rx.xml").read_text(encoding="utf-8"),
    }
    body_mb = len(str(batch)) / 1e6
    print(f"batch: {rows} rows x {fills} fills, about {body_mb:.1f} MB; 2 clients x {batches}")
    print("singles: the 50 KB sample pair; 8 clients x 60 calls")
    print(f"large singles: {len(large_rx) / 1e6:.1f} MB each; 24 clients x 2 calls")
    cases: list[tuple[str, str, dict[str, Any], int, int, dict[str, str]]] = [
        ("batch, thread pool", "/functions/predict", batch, 2, batches,
         {"GATEWAY_EXTRACTION_EXECUTOR": "thread"}),
        ("batch, process pool", "/functions/predict", batch, 2, batches,
         {"GATEWAY_EXTRACTION_EXECUTOR": "process"}),
        ("singles, inline", "/v1/predict", single, 8, 60,
         {"GATEWAY_INLINE_EXTRACTION_MAX_BYTES": "65536"}),
        ("singles, thread pool", "/v1/predict", single, 8, 60,
         {"GATEWAY_INLINE_EXTRACTION_MAX_BYTES": "0"}),
        ("large singles, defaults", "/v1/predict", large_single, 24, 2,
         {"GATEWAY_EXTRACTION_WORKERS": "1", "GATEWAY_GIL_SWITCH_INTERVAL_MS": "1"}),
        ("large singles, 5 ms switch interval, 4 threads", "/v1/predict", large_single, 24, 2,
         {"GATEWAY_EXTRACTION_WORKERS": "4", "GATEWAY_GIL_SWITCH_INTERVAL_MS": "5"}),
    ]  # fmt: skip
    cases = [case for case in cases if arguments.only in case[0]]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        artifact = arguments.artifact or directory / "builtin"
        model, model_url = start_model_server(directory, artifact)
        try:
            for number, (name, path, body, clients, calls, env) in enumerate(cases):
                case_directory = directory / f"case-{number}"
                case_directory.mkdir()
                gateway, url = start_gateway(
                    case_directory, model_url, artifact, GATEWAY_QUEUE_MAX_DEPTH="1000000", **env
                )
                try:
                    result = measure(url, path, body, clients=clients, calls=calls)
                finally:
                    gateway.stop()
                print(name, {key: round(value, 1) for key, value in result.items()})
        finally:
            model.stop()


if __name__ == "__main__":
    main()
