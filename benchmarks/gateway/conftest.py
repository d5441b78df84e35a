"""Real processes for the gateway benchmarks: model server, gateway and a bare echo server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from evidence_gateway.testing import (
    ServerProcess,
    free_port,
    script_path,
    start_gateway,
    start_model_server,
    start_worker,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BenchStack:
    """URLs of the processes under test."""

    gateway_url: str
    echo_url: str
    directory: Path
    model_url: str
    artifact: Path


def _artifact(tmp: Path) -> Path:
    existing = REPO_ROOT / "var" / "model"
    if (existing / "model.joblib").is_file() and (existing / "metadata.json").is_file():
        return existing
    directory = tmp / "model"
    subprocess.run(
        [script_path("evidence-train"), "--synthetic", "300", "--seed", "3", "--no-progress",
         "--out", str(directory)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return directory


@pytest.fixture(scope="module")
def bench_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchStack]:
    """Model server with a trained artifact, gateway (thread pool) and echo server."""
    directory = tmp_path_factory.mktemp("bench")
    artifact = _artifact(directory)
    model, model_url = start_model_server(directory, artifact)
    gateway, gateway_url = start_gateway(
        directory,
        model_url,
        artifact,
        GATEWAY_QUEUE_MAX_DEPTH="10000000",
        GATEWAY_LOG_LEVEL="warning",
        MODEL_CLIENT_DEADLINE_MS="1000",
    )
    worker = start_worker(directory)
    echo_port = free_port()
    app_dir = str(Path(__file__).parent)
    echo = ServerProcess(
        [
            sys.executable, "-m", "uvicorn", "echo_app:app", "--app-dir", app_dir,
            "--host", "127.0.0.1", "--port", str(echo_port), "--log-level", "warning",
            "--no-access-log",
        ],
        ready_url=f"http://127.0.0.1:{echo_port}/health",
        log_path=directory / "echo.log",
    ).start()  # fmt: skip
    try:
        yield BenchStack(
            gateway_url, f"http://127.0.0.1:{echo_port}", directory, model_url, artifact
        )
    finally:
        echo.stop()
        worker.stop()
        gateway.stop()
        model.stop()
