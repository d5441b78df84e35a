"""Tests of the worker's metrics port option when the port cannot be bound."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from persistence_testkit import child_environment, cli_argv


def test_worker_metrics_port_in_use(tmp_path: Path) -> None:
    """A port in use ends the worker with 2 and one line naming the port, no traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        completed = subprocess.run(
            cli_argv("worker", "--once", "--metrics-port", str(port)),
            env=child_environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert completed.returncode == 2
    assert completed.stderr == (
        f"error: cannot serve metrics on 127.0.0.1:{port} (Address already in use); choose a "
        "free port with --metrics-port or PERSISTENCE_METRICS_PORT (0 picks any free port), or "
        "stop the process that uses it\n"
    )
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    failed = [event for event in events if event["event"] == "metrics endpoint failed"]
    assert [(event["port"], event["error_type"]) for event in failed] == [(port, "OSError")]
