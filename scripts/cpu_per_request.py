"""Measure the CPU time that each process of the stack spends per ``/v1/predict`` request.

Starts a model server, a gateway and a worker on free ports of 127.0.0.1, sends rounds of
requests from client threads, and prints requests per second and the CPU time per request of
each process (with its children) and of the client threads. Extra ``KEY=VALUE`` arguments go
to the gateway's environment, for example ``GATEWAY_EXTRACTION_EXECUTOR=process``.

Run from the repository root after ``make setup`` (a model must exist in ``var/model``)::

    .venv/bin/python scripts/cpu_per_request.py
    .venv/bin/python scripts/cpu_per_request.py GATEWAY_EXTRACTION_EXECUTOR=process
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from evidence_gateway.testing import start_gateway, start_model_server, start_worker

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tree_cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def main() -> None:
    """Parse the options, start the stack and print one line per round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gateway_env", nargs="*", help="KEY=VALUE for the gateway's environment")
    parser.add_argument("--sample", type=Path, default=REPO_ROOT / "data/samples/02-diabetic")
    parser.add_argument("--artifact", type=Path, default=REPO_ROOT / "var/model")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=60, help="calls per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gateway_env = dict(item.split("=", 1) for item in args.gateway_env)
    body = {
        "policy_number": "CPU-0001",
        "mib_xml": (args.sample / "mib.xml").read_text(encoding="utf-8"),
        "rx_xml": (args.sample / "rx.xml").read_text(encoding="utf-8"),
    }

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        model, model_url = start_model_server(directory, args.artifact)
        gateway, gateway_url = start_gateway(
            directory, model_url, args.artifact, GATEWAY_LOG_LEVEL="warning", **gateway_env
        )
        worker = start_worker(directory)
        processes = {
            "gateway": psutil.Process(gateway.pid),
            "model server": psutil.Process(model.pid),
            "worker": psutil.Process(worker.pid),
        }

        def client() -> None:
            with httpx.Client(base_url=gateway_url, timeout=30.0) as http:
                for _ in range(args.calls):
                    http.post("/v1/predict", json=body).raise_for_status()

        try:
            for round_number in range(args.rounds):
                with httpx.Client(base_url=gateway_url, timeout=30.0) as http:
                    for _ in range(20):
                        http.post("/v1/predict", json=body).raise_for_status()
                before = {name: _tree_cpu_seconds(p) for name, p in processes.items()}
                client_before = _own_cpu_seconds()
                started = time.perf_counter()
                threads = [threading.Thread(target=client) for _ in range(args.clients)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - started
                requests = args.clients * args.calls
                per_request = {
                    name: (_tree_cpu_seconds(p) - before[name]) / requests * 1000
                    for name, p in processes.items()
                }
                per_request["client"] = (_own_cpu_seconds() - client_before) / requests * 1000
                figures = ", ".join(f"{name} {ms:.2f}" for name, ms in per_request.items())
                print(
                    f"round {round_number}: {requests / elapsed:.0f} requests/s; CPU ms per "
                    f"request: {figures}; total {sum(per_request.values()):.2f}"
                )
        finally:
            worker.stop()
            gateway.stop()
            model.stop()


if __name__ == "__main__":
    main()
