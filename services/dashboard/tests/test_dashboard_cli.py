"""``evidence-dashboard`` starts a real Streamlit server on the requested address."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from evidence_dashboard.cli import APP_PATH, build_command

pytestmark = pytest.mark.slow

LAUNCHER = Path(sys.executable).with_name("evidence-dashboard")
DASHBOARD_DOC = Path(__file__).resolve().parents[3] / "docs" / "dashboard.md"


def test_build_command_binds_host_and_port() -> None:
    """The command runs the package's app.py headless on the given address."""
    command = build_command("127.0.0.1", 9999)

    assert APP_PATH.is_file()
    assert ["-m", "streamlit", "run", str(APP_PATH)] == command[1:5]
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.port") + 1] == "9999"
    assert command[command.index("--server.headless") + 1] == "true"


def _documented_streamlit_commands() -> list[list[str]]:
    """Return each ``streamlit run`` command in the code blocks of docs/dashboard.md, split."""
    commands: list[list[str]] = []
    in_block = False
    pending = ""
    for line in DASHBOARD_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        pending += line.split("  #")[0].rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if "streamlit run" in pending:
            commands.append(shlex.split(pending))
        pending = ""
    return commands


def test_docs_streamlit_command_flags() -> None:
    """The documented streamlit run command passes every flag the launcher passes."""
    launcher_flags = build_command("127.0.0.1", 8501)[5:]
    commands = _documented_streamlit_commands()

    assert commands
    for command in commands:
        for flag, value in zip(launcher_flags[::2], launcher_flags[1::2], strict=True):
            assert flag in command, f"{flag} missing from {' '.join(command)}"
            assert command[command.index(flag) + 1] == value


def test_launcher_serves_health_endpoint(tmp_path: Path, unused_port: int) -> None:
    """The installed launcher serves Streamlit's health check on 127.0.0.1:<port>."""
    env = {**os.environ, "DASHBOARD_STORE_PATH": str(tmp_path / "store.sqlite3")}
    log = (tmp_path / "dashboard.log").open("wb")
    process = subprocess.Popen(
        [str(LAUNCHER), "--port", str(unused_port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{unused_port}/_stcore/health"
        deadline = time.monotonic() + 30.0
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(url, timeout=1.0).status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "dashboard.log").read_text()[-2000:]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
