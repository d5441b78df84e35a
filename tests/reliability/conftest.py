"""Fixtures of the reliability tests: the real model server, gateway and worker on 127.0.0.1.

Helpers live in ``reliability_kit``. Every fixture that starts a process checks the process's
log for the planted canary values when it stops it, so a leak anywhere fails the run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test modules import the kit by name, as the persistence tests do with their own kit.
sys.path.insert(0, str(Path(__file__).parent))

from evidence_gateway.testing import start_gateway, start_model_server, start_worker
from reliability_kit import (
    API_TOKEN,
    FaultyModelServer,
    GatewayUnderTest,
    assert_logs_clean,
)


@pytest.fixture(scope="session")
def empty_artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact directory without a model: the real model server serves its built-in model."""
    return tmp_path_factory.mktemp("no-artifact")


@pytest.fixture(scope="session")
def model_server(
    tmp_path_factory: pytest.TempPathFactory, empty_artifact_dir: Path
) -> Iterator[str]:
    """The real ``evidence-model-server`` serving its built-in model; yields its URL."""
    directory = tmp_path_factory.mktemp("model-server")
    process, url = start_model_server(directory, empty_artifact_dir)
    try:
        yield url
    finally:
        process.stop()
        assert_logs_clean(list(directory.glob("*.log")))


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, model_server: str, empty_artifact_dir: Path
) -> Iterator[GatewayUnderTest]:
    """Token-protected gateway at debug log level, with its persistence worker.

    Debug level makes the gateway log as much as it ever does, so the canary checks see every
    line it can write.
    """
    directory = tmp_path_factory.mktemp("gateway-main")
    process, url = start_gateway(
        directory,
        model_server,
        empty_artifact_dir,
        GATEWAY_API_TOKEN=API_TOKEN,
        GATEWAY_LOG_LEVEL="debug",
        MODEL_CLIENT_DEADLINE_MS="5000",
    )
    try:
        worker = start_worker(directory)
    except RuntimeError:
        process.stop()
        raise
    running = GatewayUnderTest(url=url, directory=directory, process=process, token=API_TOKEN)
    try:
        yield running
    finally:
        process.stop()
        worker.stop()
        assert_logs_clean(list(directory.glob("*.log")))


@pytest.fixture(scope="module")
def faulty_model() -> Iterator[FaultyModelServer]:
    """A faulty model server shared by one test module; tests set its mode."""
    server = FaultyModelServer().start()
    try:
        yield server
    finally:
        server.stop()
