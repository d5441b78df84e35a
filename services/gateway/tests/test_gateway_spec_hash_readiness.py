"""Readiness compares MODEL_CLIENT_FEATURE_SPEC_HASH with the gateway's own feature spec hash.

The Model Registry's inference server has no /health, so in SPCS the configured hash is the
only source of the model's hash. These gateways run as real processes with no model server on
the configured port, as before the model service is up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_features import FEATURE_SPEC_HASH
from evidence_gateway.testing import ServerProcess, free_port, start_gateway

OTHER_HASH = "0123456789abcdef"
# The model check's error with nothing on the model port and no prediction sent yet.
MODEL_DOWN_ERROR = "model_unavailable, circuit closed"


@pytest.fixture
def run_gateway(tmp_path: Path) -> Iterator[Any]:
    """Start gateway processes with extra environment, which all stop at the end of the test."""
    started: list[ServerProcess] = []

    def run(**env: str) -> tuple[ServerProcess, str]:
        directory = tmp_path / f"gateway-{len(started)}"
        directory.mkdir()
        server, url = start_gateway(
            directory,
            f"http://127.0.0.1:{free_port()}",
            tmp_path / "no-artifact",
            MODEL_CLIENT_MODEL_VERSION="V2",
            **env,
        )
        started.append(server)
        return server, url

    yield run
    for server in started:
        server.stop()


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/health/ready", timeout=10.0)


def _feature_spec_check(url: str, status_code: int, status: str) -> dict[str, Any]:
    """Return the ``feature_spec`` check of /health/ready after checking its code and status."""
    response = _ready(url)
    assert response.status_code == status_code
    body = response.json()
    assert body["status"] == status
    check: dict[str, Any] = body["checks"]["feature_spec"]
    return check


def _function_health(url: str, rows: int) -> list[list[Any]]:
    """Call FN_HEALTH's route with ``rows`` rows and return the response rows."""
    body = {"data": [[number] for number in range(rows)]}
    response = httpx.post(f"{url}/functions/health", json=body, timeout=10.0)
    assert response.status_code == 200
    data: list[list[Any]] = response.json()["data"]
    return data


def test_spec_hash_mismatch_not_ready(run_gateway: Any, tmp_path: Path) -> None:
    """Another configured hash: 503, both hashes and the fix in the check and in the log."""
    _, url = run_gateway(MODEL_CLIENT_FEATURE_SPEC_HASH=OTHER_HASH)

    check = _feature_spec_check(url, 503, "not_ready")

    assert check["ok"] is False
    assert check["detail"]["gateway_hash"] == FEATURE_SPEC_HASH
    assert check["detail"]["model_hash"] == OTHER_HASH
    assert check["detail"]["matches_model"] is False
    error = check["detail"]["error"]
    assert OTHER_HASH in error
    assert FEATURE_SPEC_HASH in error
    assert "Deploy a model version trained on this gateway's feature spec" in error
    log = next((tmp_path / "gateway-0").glob("gateway-*.log")).read_text(encoding="utf-8")
    assert "MODEL_CLIENT_FEATURE_SPEC_HASH" in log
    assert OTHER_HASH in log
    assert FEATURE_SPEC_HASH in log


def test_spec_hash_match_passes_check(run_gateway: Any) -> None:
    """The gateway's own hash configured: the check passes, and only the model is missing."""
    _, url = run_gateway(MODEL_CLIENT_FEATURE_SPEC_HASH=FEATURE_SPEC_HASH)

    check = _feature_spec_check(url, 200, "degraded")

    assert check["ok"] is True
    assert check["detail"]["model_hash"] == FEATURE_SPEC_HASH
    assert check["detail"]["matches_model"] is True
    assert "error" not in check["detail"]


# An empty hash counts as unset, because compose's ``${VAR:-}`` passes an unset variable as
# an empty string.
@pytest.mark.parametrize(
    "env", [{}, {"MODEL_CLIENT_FEATURE_SPEC_HASH": ""}], ids=["unset", "empty"]
)
def test_spec_hash_unset_not_compared(run_gateway: Any, env: dict[str, str]) -> None:
    """No configured hash and no /health: nothing to compare, so the check passes."""
    _, url = run_gateway(**env)

    check = _ready(url).json()["checks"]["feature_spec"]

    assert check["ok"] is True
    assert check["detail"]["model_hash"] is None
    assert check["detail"]["matches_model"] is None
    assert "error" not in check["detail"]


def test_function_health_mismatch_names_hashes(run_gateway: Any) -> None:
    """FN_HEALTH on a mismatch: both hashes and the fix text of /health/ready, in every row."""
    _, url = run_gateway(MODEL_CLIENT_FEATURE_SPEC_HASH=OTHER_HASH)
    ready_error = _ready(url).json()["checks"]["feature_spec"]["detail"]["error"]

    rows = _function_health(url, 3)

    assert [row[0] for row in rows] == [0, 1, 2]
    for _, summary in rows:
        assert summary["status"] == "unhealthy"
        assert summary["checks"]["feature_spec"] is False
        assert summary["feature_spec_hash"] == FEATURE_SPEC_HASH
        assert summary["model_feature_spec_hash"] == OTHER_HASH
        assert summary["errors"] == {"feature_spec": ready_error, "model": MODEL_DOWN_ERROR}
        assert "Deploy a model version trained on this gateway's feature spec" in ready_error


def test_function_health_match_model_error_only(run_gateway: Any) -> None:
    """FN_HEALTH with matching hashes: both hashes, and only the model down in the errors."""
    _, url = run_gateway(MODEL_CLIENT_FEATURE_SPEC_HASH=FEATURE_SPEC_HASH)

    [[number, summary]] = _function_health(url, 1)

    assert number == 0
    assert summary["status"] == "degraded"
    assert summary["checks"] == {
        "queue": True,
        "feature_spec": True,
        "model_info": True,
        "model": False,
    }
    assert summary["feature_spec_hash"] == FEATURE_SPEC_HASH
    assert summary["model_feature_spec_hash"] == FEATURE_SPEC_HASH
    assert summary["errors"] == {"model": MODEL_DOWN_ERROR}


def test_function_health_unset_hash_null(run_gateway: Any) -> None:
    """FN_HEALTH with no model hash known: the model hash is null, and 0 rows return 0 rows."""
    _, url = run_gateway()

    [[_, summary]] = _function_health(url, 1)

    assert summary["feature_spec_hash"] == FEATURE_SPEC_HASH
    assert summary["model_feature_spec_hash"] is None
    assert summary["errors"] == {"model": MODEL_DOWN_ERROR}
    assert _function_health(url, 0) == []
