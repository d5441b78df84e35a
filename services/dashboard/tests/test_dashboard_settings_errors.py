"""``evidence-dashboard`` with invalid settings: exit status 2 before Streamlit starts.

The launcher runs as a subprocess on a free port, so had it started Streamlit anyway it would
take no real service's port, and ``subprocess.run`` kills it at the timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_launcher_invalid_token_hidden(tmp_path: Path, unused_port: int) -> None:
    """An invalid DASHBOARD_GATEWAY_TOKEN is named with its value hidden."""
    token = "CANARY-TOKEN with a space"  # noqa: S105 - a made-up value the output must not show
    result = _run_launcher({"DASHBOARD_GATEWAY_TOKEN": token}, tmp_path, unused_port)

    assert 2 == result.returncode, result.stderr
    assert "  DASHBOARD_GATEWAY_TOKEN=(hidden): DASHBOARD_GATEWAY_TOKEN contains characters" in (
        result.stderr
    )
    assert "CANARY" not in result.stderr
    assert "" == result.stdout


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


def _run_with_options(*options: str, cwd: Path, port: int) -> subprocess.CompletedProcess[str]:
    """Run the launcher with ``options`` and valid DASHBOARD_* settings on 127.0.0.1:``port``.

    A wide terminal keeps Rich from wrapping the error box. Had a bad --port reached Streamlit,
    it would bind 127.0.0.1 only, and ``subprocess.run`` kills it at the timeout.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("DASHBOARD_")}
    env.update(
        {
            "DASHBOARD_HOST": "127.0.0.1",
            "DASHBOARD_PORT": str(port),
            "COLUMNS": "200",
            "TERMINAL_WIDTH": "200",
        }
    )
    return subprocess.run(
        [str(LAUNCHER), *options], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


@pytest.mark.parametrize("port", ["0", "-1", "65536", "99999"])
def test_launcher_port_option_out_of_range(tmp_path: Path, unused_port: int, port: str) -> None:
    """--port outside 1 to 65535 exits 2 naming the value and range, before Streamlit starts."""
    result = _run_with_options("--port", port, cwd=tmp_path, port=unused_port)

    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert "Invalid value for '--port'" in result.stderr
    assert f"port {port} is not in the range 1 to 65535" in result.stderr
    assert "leave out --port to use DASHBOARD_PORT (default 8501)" in result.stderr
    assert "" == result.stdout


@pytest.mark.parametrize("port", ["1", "65535"])
def test_launcher_port_option_bounds_valid(tmp_path: Path, unused_port: int, port: str) -> None:
    """The range ends pass the --port check, so --check-settings exits 0."""
    result = _run_with_options("--port", port, "--check-settings", cwd=tmp_path, port=unused_port)

    assert 0 == result.returncode, result.stderr
    assert "" == result.stderr


def test_launcher_help_shows_port_range(tmp_path: Path, unused_port: int) -> None:
    """--help gives the accepted --port range and the default."""
    result = _run_with_options("--help", cwd=tmp_path, port=unused_port)

    assert 0 == result.returncode, result.stderr
    assert "Port to bind, 1 to 65535; default DASHBOARD_PORT or 8501." in result.stdout
