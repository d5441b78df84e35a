"""Real processes for the whole-stack benchmarks: model server, gateway, worker and echo server.

The processes are started with the helpers of ``evidence_gateway.testing``, the same ones the
end-to-end tests use, on free ports of 127.0.0.1. The echo server is the bare FastAPI app of
``benchmarks/gateway/echo_app.py``, so both benchmark areas share one round-trip floor.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from evidence_features import FEATURE_SPEC_HASH
from evidence_gateway.testing import (
    ServerProcess,
    Stack,
    free_port,
    script_path,
    start_gateway,
    start_model_server,
    start_worker,
)

BENCH_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = BENCH_ROOT.parent
SAMPLE = REPO_ROOT / "data" / "samples" / "02-diabetic"
# Large enough that no benchmark here fills the queue while the worker is stopped.
QUEUE_MAX_DEPTH = "10000000"


@dataclass(frozen=True)
class BenchStack:
    """The running processes and the URL of the echo server beside them."""

    stack: Stack
    echo_url: str


def _cached_artifact(out: Path) -> Path:
    """Train the benchmark model once (300 generated applicants, seed 3) and reuse it.

    The cached artifact is retrained when the feature spec changed since it was written.
    """
    directory = out / "model"
    metadata = directory / "metadata.json"
    if metadata.is_file() and (directory / "model.joblib").is_file():
        written = json.loads(metadata.read_text(encoding="utf-8"))
        if written.get("feature_spec_hash") == FEATURE_SPEC_HASH:
            return directory
    subprocess.run(
        [script_path("evidence-train"), "--synthetic", "300", "--seed", "3", "--no-progress",
         "--out", str(directory)],
        check=True,
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    return directory


@pytest.fixture(scope="session")
def bench_artifact(request: pytest.FixtureRequest) -> Path:
    """Directory of the benchmark model artifact, cached under ``--bench-out``."""
    return _cached_artifact(Path(request.config.getoption("--bench-out")))


def start_echo(directory: Path) -> tuple[ServerProcess, str]:
    """Start the bare FastAPI echo app on a free port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    echo = ServerProcess(
        [
            sys.executable, "-m", "uvicorn", "echo_app:app",
            "--app-dir", str(BENCH_ROOT / "gateway"),
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
        ],
        ready_url=f"{url}/health",
        log_path=directory / "echo.log",
    ).start()  # fmt: skip
    return echo, url


def start_stack(directory: Path, artifact: Path, **gateway_env: str) -> Stack:
    """Start model server, gateway and worker; the caller stops them."""
    model, model_url = start_model_server(directory, artifact)
    gateway, gateway_url = start_gateway(
        directory,
        model_url,
        artifact,
        GATEWAY_QUEUE_MAX_DEPTH=QUEUE_MAX_DEPTH,
        GATEWAY_LOG_LEVEL="warning",
        **gateway_env,
    )
    worker = start_worker(directory)
    return Stack(
        directory=directory,
        model_url=model_url,
        gateway_url=gateway_url,
        queue_path=directory / "queue.sqlite3",
        store_path=directory / "store.sqlite3",
        processes={"model": model, "gateway": gateway, "worker": worker},
    )


def stop_stack(stack: Stack) -> None:
    """Stop every process of ``stack``, the worker last so it drains what it can."""
    for name in ("gateway", "model", "worker"):
        process = stack.processes.get(name)
        if process is not None:
            process.stop()


@pytest.fixture(scope="session")
def bench_stack(
    tmp_path_factory: pytest.TempPathFactory, bench_artifact: Path
) -> Iterator[BenchStack]:
    """One shared stack with a 1 s model deadline, so slow calls are measured, not cut off."""
    directory = tmp_path_factory.mktemp("stack")
    stack = start_stack(directory, bench_artifact, MODEL_CLIENT_DEADLINE_MS="1000")
    echo, echo_url = start_echo(directory)
    try:
        yield BenchStack(stack=stack, echo_url=echo_url)
    finally:
        echo.stop()
        stop_stack(stack)


@pytest.fixture(scope="session")
def typical_body() -> dict[str, str]:
    """A /v1/predict body with the bundled diabetic sample (invented data)."""
    return {
        "policy_number": "BENCH-0001",
        "mib_xml": (SAMPLE / "mib.xml").read_text(encoding="utf-8"),
        "rx_xml": (SAMPLE / "rx.xml").read_text(encoding="utf-8"),
    }
