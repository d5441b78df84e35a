"""A fake model service that reports a given model version on ``GET /health``.

Run as ``python fake_model_service.py PORT VERSION [--string-probabilities]``. It listens on
127.0.0.1:PORT, returns
``{"model_name": "FAKE", "model_version": VERSION, "feature_spec_hash": <installed hash>}``
on ``GET /health`` and probability 0.25 for every row on ``POST /predict-proba``. With
``--string-probabilities`` each probability is the JSON string ``"0.25"``, an invalid response.
It counts the prediction requests it received in the ``x-predict-calls`` header of each
``/health`` response.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from evidence_features import FEATURE_SPEC_HASH


class FakeModelHandler(BaseHTTPRequestHandler):
    """Handler that returns the server's version on ``/health`` and 0.25 a row on predictions."""

    server: FakeModelServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path != "/health":
            self._send(404, {"detail": "not found"})
            return
        body = {
            "model_name": "FAKE",
            "model_version": self.server.model_version,
            "feature_spec_hash": FEATURE_SPEC_HASH,
        }
        self._send(200, body, {"x-predict-calls": str(self.server.predict_calls)})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        if self.path != "/predict-proba":
            self._send(404, {"detail": "not found"})
            return
        self.server.predict_calls += 1
        rows = request["dataframe_split"]["data"]
        outputs: dict[str, object] = {"output_feature_0": 0.75, "output_feature_1": 0.25}
        if self.server.string_probabilities:
            outputs = {name: str(value) for name, value in outputs.items()}
        self._send(200, {"data": [[index, outputs] for index in range(len(rows))]})

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: the tests read the counters, not a request log."""

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class FakeModelServer(ThreadingHTTPServer):
    """The HTTP server with the version it reports, its output type and its request count."""

    def __init__(self, port: int, model_version: str, *, string_probabilities: bool) -> None:
        super().__init__(("127.0.0.1", port), FakeModelHandler)
        self.model_version = model_version
        self.string_probabilities = string_probabilities
        self.predict_calls = 0


def main() -> None:
    """Serve until the process is terminated."""
    port, model_version = int(sys.argv[1]), sys.argv[2]
    string_probabilities = sys.argv[3:] == ["--string-probabilities"]
    FakeModelServer(port, model_version, string_probabilities=string_probabilities).serve_forever()


if __name__ == "__main__":
    main()
