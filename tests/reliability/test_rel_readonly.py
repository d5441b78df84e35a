"""A read-only queue file: the gateway returns 503, reports not ready, and recovers.

The tests run as root here, and root ignores file modes. The gateway is therefore started
through ``setpriv`` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so a 0444 queue file is
read-only for it as for any other user.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from evidence_gateway.testing import ServerProcess, free_port, script_path
from evidence_persistence import PredictionQueue
from reliability_kit import CANARY_MIB, assert_logs_clean, gateway_env

pytestmark = pytest.mark.slow

_CAPS = "-dac_override,-dac_read_search"


def _privilege_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is not installed")
    return [setpriv, f"--inh-caps={_CAPS}", f"--bounding-set={_CAPS}"]


def _make_writable(queue_path: Path) -> None:
    # SQLite creates the -wal and -shm files with the database file's mode, so they are
    # read-only too and must be made writable with it, as on a remounted volume.
    for suffix in ("", "-wal", "-shm"):
        path = queue_path.with_name(queue_path.name + suffix)
        if path.exists():
            path.chmod(0o644)


def _predict(url: str, policy: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/predict",
        json={"policy_number": policy, "mib_xml": CANARY_MIB, "rx_xml": None},
        timeout=30.0,
    )


def test_readonly_queue_503_then_recovers(
    tmp_path: Path, model_server: str, empty_artifact_dir: Path
) -> None:
    """Read-only queue: 503 and not ready; once writable again, the next request is stored."""
    queue_path = tmp_path / "queue.sqlite3"
    queue = PredictionQueue(queue_path)
    queue.check_writable()
    queue.close()
    queue_path.chmod(0o444)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = ServerProcess(
        [*_privilege_prefix(), script_path("evidence-gateway")],
        ready_url=f"{url}/health/live",
        env=gateway_env(tmp_path, port, model_server, empty_artifact_dir),
        log_path=tmp_path / "gateway.log",
    ).start()
    try:
        refused = _predict(url, "RO-1")
        not_ready = httpx.get(f"{url}/health/ready", timeout=10.0)
        _make_writable(queue_path)
        recovered = _predict(url, "RO-2")
        ready = httpx.get(f"{url}/health/ready", timeout=10.0)
    finally:
        _make_writable(queue_path)
        gateway.stop()

    assert 503 == refused.status_code
    assert "persistence_unavailable" == refused.json()["error"]["type"]
    assert 503 == not_ready.status_code
    assert not_ready.json()["checks"]["queue"]["ok"] is False
    assert 200 == recovered.status_code, recovered.text[:300]
    assert 200 == ready.status_code
    assert 1 == PredictionQueue(queue_path).depth()
    assert_logs_clean([tmp_path / "gateway.log"])
