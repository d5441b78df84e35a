"""Helpers of the ``evidence-score`` tests: run the real command, and fake servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from evidence_gateway.testing import free_port, script_path


def run_score_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``evidence-score`` with ``args`` and ``env`` on top of this one's."""
    return subprocess.run(
        [script_path("evidence-score"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        cwd=cwd,
    )


def rule_based_env(tmp_path: Path) -> dict[str, str]:
    """Return the environment of an in-process run that the rule-based fallback scores.

    Nothing listens at the model URL, and the queue lives under ``tmp_path``.
    """
    return {
        "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        "GATEWAY_LOG_LEVEL": "error",
        "MODEL_CLIENT_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_CLIENT_REASON_PROFILE_DIR": str(tmp_path / "no-model"),
    }


@contextlib.contextmanager
def serve_fixed_response(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """Serve ``status`` and ``body`` to every POST on 127.0.0.1 and yield the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            # Read the body, so that closing the connection cannot reset it before the response.
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
