"""Real processes on 127.0.0.1 for the end-to-end tests: model server, gateway and worker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidence_gateway.stack.samples import load_smoke_inputs
from evidence_gateway.testing import (
    Stack,
    script_path,
    start_gateway,
    start_model_server,
    start_worker,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def smoke_inputs() -> list[tuple[str, str | None, str | None]]:
    """The SQL smoke-test applicants built from data/samples/smoke, plus one with SQL NULLs."""
    smoke = load_smoke_inputs(REPO_ROOT / "data" / "samples" / "smoke")
    assert len(smoke) == 2, "data/samples/smoke is missing its three files"
    return [(s.policy_number, s.mib_xml, s.rx_xml) for s in smoke] + [("TEST-NULL", None, None)]


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model artifact trained by ``evidence-train`` on a small generated set.

    1,500 rows is about the least that gives the model real feature importances, so that
    registry-scored predictions carry model reasons rather than the fallback terms.
    """
    directory = tmp_path_factory.mktemp("trained") / "model"
    subprocess.run(
        [
            script_path("evidence-train"),
            "--synthetic",
            "1500",
            "--seed",
            "11",
            "--no-progress",
            "--out",
            str(directory),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[Stack]:
    """Model server with the trained artifact, gateway and persistence worker."""
    directory = tmp_path_factory.mktemp("stack")
    model, model_url = start_model_server(directory, trained_model_dir)
    gateway, gateway_url = start_gateway(directory, model_url, trained_model_dir)
    worker = start_worker(directory)
    running = Stack(
        directory=directory,
        model_url=model_url,
        gateway_url=gateway_url,
        queue_path=directory / "queue.sqlite3",
        store_path=directory / "store.sqlite3",
        processes={"model": model, "gateway": gateway, "worker": worker},
    )
    try:
        yield running
    finally:
        for process in reversed(list(running.processes.values())):
            process.stop()
