"""``evidence-dashboard`` with invalid settings: exit status 2 before Streamlit starts.

The launcher runs as a subprocess on a free port, so had it started Streamlit anyway it would
take no real service's port, and ``subprocess.run`` kills it at the timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LAUNCHER = Path(sys.executable).with_name("evidence-dashboard")


def _run_launcher(
    settings: dict[str, str], cwd: Path, port: int
) -> subprocess.CompletedProcess[str]:
    """Run the launcher with ``settings`` in place of any DASHBOARD_* of this environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DASHBOARD_")}
    env.update({"DASHBOARD_PORT": str(port), **settings})
    return subprocess.run(
        [str(LAUNCHER)], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def test_launcher_one_invalid_setting(tmp_path: Path, unused_port: int) -> None:
    """One invalid value gives the variable, its value, the reason and the fix."""
    result = _run_launcher({"DASHBOARD_GATEWAY_URL": "ftp://127.0.0.1"}, tmp_path, unused_port)

    assert 2 == result.returncode, result.stderr
    assert [
        "error: invalid setting in the environment:",
        "  DASHBOARD_GATEWAY_URL='ftp://127.0.0.1': URL scheme should be 'http' or 'https'",
        "To fix: set DASHBOARD_GATEWAY_URL to a valid value or unset it to use the default.",
    ] == result.stderr.splitlines()
    assert "" == result.stdout


def test_launcher_several_invalid_settings(tmp_path: Path, unused_port: int) -> None:
    """Every invalid variable is listed, with no traceback."""
    result = _run_launcher(
        {
            "DASHBOARD_MAX_ROWS": "5",
            "DASHBOARD_BACKEND": "postgres",
            "DASHBOARD_GATEWAY_TIMEOUT_SECONDS": "0",
        },
        tmp_path,
        unused_port,
    )

    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: 3 invalid settings in the environment:\n")
    assert "  DASHBOARD_MAX_ROWS='5': Input should be greater than or equal to 100" in (
        result.stderr
    )
    assert "  DASHBOARD_BACKEND='postgres': Input should be 'sqlite' or 'snowflake'" in (
        result.stderr
    )
    assert "  DASHBOARD_GATEWAY_TIMEOUT_SECONDS='0': Input should be greater than 0" in (
        result.stderr
    )
    assert "To fix: set each variable shown with a value" in result.stderr


def test_check_settings_valid_exits_zero(tmp_path: Path, unused_port: int) -> None:
    """--check-settings with valid settings exits 0 without starting Streamlit."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DASHBOARD_")}
    env["DASHBOARD_PORT"] = str(unused_port)
    result = subprocess.run(
        [str(LAUNCHER), "--check-settings"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )

    assert 0 == result.returncode, result.stderr
    assert "" == result.stdout
    assert "" == result.stderr


def test_check_settings_invalid_exits_two(tmp_path: Path, unused_port: int) -> None:
    """--check-settings reports an invalid setting as the launcher does."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DASHBOARD_")}
    env.update({"DASHBOARD_PORT": str(unused_port), "DASHBOARD_MAX_ROWS": "5"})
    result = subprocess.run(
        [str(LAUNCHER), "--check-settings"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )

    assert 2 == result.returncode, result.stderr
    assert "  DASHBOARD_MAX_ROWS='5': Input should be greater than or equal to 100" in (
        result.stderr
    )
