"""``evidence-model-server`` with invalid settings: exit status 2 and one line per variable.

The server runs as a subprocess with port 0, so had it started anyway it would take no real
service's port, and ``subprocess.run`` kills it at the timeout.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from evidence_model_client.config import ServerSettings
from pydantic import ValidationError

from .conftest import SERVER_BIN


def _run_server(
    settings: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the server with ``settings`` in place of any MODEL_SERVER_* of this environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MODEL_")}
    env.update({"MODEL_SERVER_PORT": "0", "MODEL_SERVER_ARTIFACT_DIR": str(cwd / "model")})
    env.update(settings)
    return subprocess.run(
        [str(SERVER_BIN), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def test_server_one_invalid_setting(tmp_path: Path) -> None:
    """One invalid value gives the variable, its value, the reason and the fix."""
    result = _run_server({"MODEL_SERVER_SCORING_THREADS": "0"}, tmp_path)

    assert 2 == result.returncode, result.stderr
    assert [
        "error: invalid setting in the environment:",
        "  MODEL_SERVER_SCORING_THREADS='0': Input should be greater than or equal to 1",
        "To fix: set MODEL_SERVER_SCORING_THREADS to a valid value or unset it to use the default.",
    ] == result.stderr.splitlines()
    assert "" == result.stdout


def test_server_several_invalid_settings(tmp_path: Path) -> None:
    """Every invalid variable is listed, with no traceback."""
    result = _run_server(
        {
            "MODEL_SERVER_MAX_ROWS": "lots",
            "MODEL_SERVER_LOG_LEVEL": "trace",
            "MODEL_SERVER_ALLOW_BUILTIN": "perhaps",
        },
        tmp_path,
    )

    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: 3 invalid settings in the environment:\n")
    assert "  MODEL_SERVER_MAX_ROWS='lots': Input should be a valid integer" in result.stderr
    assert "  MODEL_SERVER_LOG_LEVEL='trace': Input should be 'debug'" in result.stderr
    assert "  MODEL_SERVER_ALLOW_BUILTIN='perhaps': Input should be a valid boolean" in (
        result.stderr
    )
    assert "To fix: set each variable shown with a value" in result.stderr


def test_server_port_option_out_of_range(tmp_path: Path) -> None:
    """--port outside 0..65535 is a usage error of the option, not a settings traceback."""
    result = _run_server({}, tmp_path, "--port", "70000")

    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert "--port" in result.stderr


def test_server_inflight_limit_below_minimum(tmp_path: Path) -> None:
    """An in-flight body limit below 1024 bytes names the variable and the bound."""
    result = _run_server({"MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES": "0"}, tmp_path)

    assert 2 == result.returncode, result.stderr
    assert [
        "error: invalid setting in the environment:",
        "  MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES='0': Input should be greater than or equal to 1024",
        "To fix: set MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES to a valid value or unset it to use "
        "the default.",
    ] == result.stderr.splitlines()


def test_server_inflight_limit_below_body_limit(tmp_path: Path) -> None:
    """An in-flight limit smaller than one body could never admit a full body: exit 2."""
    result = _run_server(
        {
            "MODEL_SERVER_MAX_BODY_BYTES": "2000000",
            "MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES": "1000000",
        },
        tmp_path,
    )

    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert [
        "error: invalid setting in the environment:",
        "  MODEL_SERVER_MAX_BODY_BYTES=2000000 exceeds MODEL_SERVER_MAX_INFLIGHT_BODY_BYTES="
        "1000000, so a body of the largest size could never be accepted; raise the in-flight "
        "limit or lower the body limit",
    ] == result.stderr.splitlines()


def test_server_body_timeout_zero(tmp_path: Path) -> None:
    """A body timeout of 0 names the variable, its value and the bound: exit 2."""
    result = _run_server({"MODEL_SERVER_BODY_TIMEOUT_SECONDS": "0"}, tmp_path)

    assert 2 == result.returncode, result.stderr
    assert [
        "error: invalid setting in the environment:",
        "  MODEL_SERVER_BODY_TIMEOUT_SECONDS='0': Input should be greater than 0",
        "To fix: set MODEL_SERVER_BODY_TIMEOUT_SECONDS to a valid value or unset it to use the "
        "default.",
    ] == result.stderr.splitlines()


@pytest.mark.parametrize(
    ("value", "level"), [("error", "error"), ("ERROR", "error"), ("Debug", "debug")]
)
def test_server_log_level_any_case(value: str, level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The level is read in either case, as the persistence worker's is."""
    monkeypatch.setenv("MODEL_SERVER_LOG_LEVEL", value)

    assert ServerSettings().log_level == level


def test_server_log_level_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SERVER_LOG_LEVEL", "Loud")

    with pytest.raises(ValidationError, match="log_level") as caught:
        ServerSettings()

    assert caught.value.errors()[0]["input"] == "Loud"
