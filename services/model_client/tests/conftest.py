"""Fixtures: a small trained artifact, the real model server as a subprocess, faulty servers."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH
from evidence_model_client.artifact import ArtifactMetadata, ModelArtifact, compute_feature_stats
from evidence_model_client.breaker import CircuitBreaker, CircuitState
from evidence_model_client.client import ModelClient
from evidence_model_client.config import ClientSettings
from evidence_model_client.protocol import encode_dataframe_split
from evidence_model_client.scorer import RiskScorer
from prometheus_client import CollectorRegistry
from sklearn.ensemble import GradientBoostingClassifier

SERVER_BIN = Path(sys.executable).parent / "evidence-model-server"
STARTUP_TIMEOUT = 120.0


def make_training_data(n_rows: int = 400, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Random non-negative features whose label depends on two columns."""
    rng = np.random.default_rng(seed)
    matrix = rng.random((n_rows, len(FEATURE_NAMES))) * 3.0
    signal = matrix[:, FEATURE_NAMES.index("RX_MAX_CLASS_SEVERITY")] + matrix[:, 1]
    labels = (signal + rng.normal(0, 0.5, n_rows) > 3.0).astype(int)
    return matrix, labels


def train_artifact(
    directory: Path, *, spec_hash: str | None = None, model: Any = None
) -> ModelArtifact:
    """Train a tiny gradient-boosted model on random data and save it as an artifact.

    ``model`` is an unfitted classifier to use instead of the default
    ``GradientBoostingClassifier``. A model without ``feature_importances_`` gets zeros.
    """
    matrix, labels = make_training_data()
    if model is None:
        model = GradientBoostingClassifier(n_estimators=15, max_depth=2, random_state=0)
    model.fit(matrix, labels)
    importances = getattr(model, "feature_importances_", np.zeros(len(FEATURE_NAMES)))
    metadata = ArtifactMetadata(
        model_version="V2",
        metrics={"roc_auc": 0.9},
        feature_stats=compute_feature_stats(matrix),
        feature_importances=dict(zip(FEATURE_NAMES, (float(v) for v in importances), strict=True)),
        training_summary={"rows": int(labels.size), "positive_rate": float(labels.mean())},
        feature_spec_hash=FEATURE_SPEC_HASH if spec_hash is None else spec_hash,
    )
    artifact = ModelArtifact(model=model, metadata=metadata)
    artifact.save(directory)
    return artifact


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running ``evidence-model-server`` subprocess."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


def start_server(
    artifact_dir: Path,
    log_path: Path,
    *,
    port: int | None = None,
    keep_alive_seconds: int | None = None,
    **env: str,
) -> ServerProcess:
    """Start the real model server (on a free port by default); wait until ``/health`` responds.

    With ``keep_alive_seconds``, the server app runs under uvicorn's command line with that
    keep-alive timeout, because ``evidence-model-server`` has no option for it.
    """
    port = free_port() if port is None else port
    environment = {
        **os.environ,
        "MODEL_SERVER_ARTIFACT_DIR": str(artifact_dir),
        "MODEL_SERVER_PORT": str(port),
        "MODEL_SERVER_HOST": "127.0.0.1",
        **env,
    }
    command = [str(SERVER_BIN)]
    if keep_alive_seconds is not None:
        command = [
            sys.executable, "-m", "uvicorn", "evidence_model_client.server:create_app",
            "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--timeout-keep-alive", str(keep_alive_seconds), "--no-access-log",
        ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    # Start-up imports scikit-learn and FastAPI: about 2 s on an idle machine, but over 20 s
    # was seen while other suites loaded both cores.
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"model server exited with {process.returncode}: {log_path.read_text()}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{base_url}/health", timeout=0.5).status_code == 200:
                return ServerProcess(process, base_url, log_path)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    msg = f"model server did not answer /health within {STARTUP_TIMEOUT} s: {log_path.read_text()}"
    raise RuntimeError(msg)


def stop_server(server: ServerProcess) -> None:
    """Terminate the server and wait for it."""
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def server_address(server: ServerProcess) -> tuple[str, int]:
    """Return the host and port that ``server`` listens on."""
    return "127.0.0.1", int(server.base_url.rsplit(":", 1)[1])


def request_head(content_length: int | None) -> bytes:
    """Return the head of a ``/predict-proba`` POST; ``None`` declares a chunked body."""
    length = (
        "Transfer-Encoding: chunked"
        if content_length is None
        else f"Content-Length: {content_length}"
    )
    return (
        "POST /predict-proba HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{length}\r\n\r\n"
    ).encode("ascii")


def read_until_closed(sock: socket.socket) -> bytes:
    """Read from ``sock`` until the peer closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def padded_body(size: int | None = None, rows: int = 1) -> bytes:
    """A valid dataframe_split body of exactly ``size`` bytes (JSON allows trailing blanks)."""
    body = encode_dataframe_split(np.full((rows, 105), 0.5))
    if size is None:
        return body
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained artifact directory, shared by the whole session."""
    directory = tmp_path_factory.mktemp("artifact")
    train_artifact(directory)
    return directory


@pytest.fixture(scope="session")
def model_server(
    artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real local model server serving ``artifact_dir``."""
    server = start_server(artifact_dir, tmp_path_factory.mktemp("logs") / "server.log")
    yield server
    stop_server(server)


@pytest.fixture
def rows() -> np.ndarray:
    """Five feature rows drawn like the training data."""
    matrix, _ = make_training_data(n_rows=5, seed=11)
    return matrix


# --- faulty servers ---------------------------------------------------------------------------


@dataclass
class FaultyServer:
    """An HTTP/1.1 server on 127.0.0.1 whose behaviour the test sets through ``mode``.

    Modes: ``ok`` (valid response, probability 0.25 per row), ``hang`` (never responds),
    ``slow`` (valid response after ``delay`` seconds), ``status`` (HTTP ``status``, body
    ``model failed``), ``garbage`` (200 with a non-JSON body), ``wrong_rows`` (one row fewer),
    ``drop`` (closes the connection without a response), ``bad_probability`` (1.5 per row),
    ``truncated`` (closes the connection after part of the body), ``malformed`` (a status line
    that is not HTTP), ``bad_encoding`` (a body declared gzip that is not), ``gzip_bomb`` (200
    with a valid gzip body of ``GZIP_BOMB_MIB`` MiB of zeros, see ``gzip_bomb``), ``redirect``
    (302 to ``redirect_to``), ``padded`` (a valid answer after ``padding`` bytes of JSON
    whitespace) and ``padded_chunked`` (the same with chunked transfer encoding, so no length
    is declared).
    ``GET /health`` returns ``health`` as JSON with status ``health_status`` in
    every mode, unless ``health_mode`` is ``drop``: then it closes the connection unanswered.
    It sends each ``/health`` response after ``health_delay`` seconds.
    Every response carries ``response_headers`` too. The server records each request's path
    and body in ``requests`` and its headers (names in lower case) in ``request_headers``. It
    counts accepted connections in ``connections`` and those that ended in ``closed_connections``.
    With ``max_rows`` set, a ``/predict-proba`` body of more rows gets 413 before the mode
    applies, as the real server's ``MODEL_SERVER_MAX_ROWS`` does. With ``reject_value`` set, a
    body that contains that value then gets 400, as the real server rejects a value beyond the
    float32 range. In ``slow`` mode the delay comes first, so rejected calls are slow too.
    """

    mode: str = "ok"
    delay: float = 0.0
    status: int = 500
    max_rows: int | None = None
    reject_value: float | None = None
    health: dict[str, object] = field(
        default_factory=lambda: {"model_name": "FAKE", "model_version": "V9"}
    )
    health_status: int = 200
    health_mode: str = "ok"
    health_delay: float = 0.0
    redirect_to: str = "http://127.0.0.1:1/predict-proba"
    padding: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0
    closed_connections: int = 0
    #: ``/predict-proba`` requests whose response is not sent yet, and the maximum of that count.
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        """Root URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def predict_calls(self) -> int:
        """Requests received on ``/predict-proba``."""
        return sum(1 for path, _ in self.requests if path == "/predict-proba")

    @property
    def predict_sizes(self) -> list[int]:
        """Row count of each ``/predict-proba`` request, in the order of arrival."""
        return [_row_count(body) for path, body in self.requests if path == "/predict-proba"]

    @property
    def health_calls(self) -> int:
        """Requests received on ``/health``."""
        return sum(1 for path, _ in self.requests if path == "/health")

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                self.requests.append((path, body))
                self.request_headers.append(headers)
                if not await self._answer(writer, method, path, body):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # stop() cancels handlers on purpose; ending normally keeps asyncio from logging it.
            pass
        finally:
            self.closed_connections += 1
            writer.close()

    async def _answer(
        self, writer: asyncio.StreamWriter, method: str, path: str, body: bytes
    ) -> bool:
        if method == "GET" and path == "/health":
            await asyncio.sleep(self.health_delay)
            if self.health_mode == "drop":
                return False
            self._write(writer, self.health_status, json.dumps(self.health).encode())
            await writer.drain()
            return True
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer_predict(writer, body)
        finally:
            self.in_flight -= 1

    async def _answer_predict(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(self.delay)
        if self.max_rows is not None and _row_count(body) > self.max_rows:
            self._write(writer, 413, b'{"detail": "too many rows"}')
            await writer.drain()
            return True
        if self.reject_value is not None and _contains_value(body, self.reject_value):
            self._write(writer, 400, b'{"detail": "column X of row 0 is beyond the float32 range"}')
            await writer.drain()
            return True
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "drop":
            return False
        if mode in _RAW_RESPONSES:
            writer.write(_RAW_RESPONSES[mode])
            await writer.drain()
            return False
        if mode == "status":
            self._write(writer, self.status, b"model failed")
        elif mode == "gzip_bomb":
            self._write(writer, 200, gzip_bomb(GZIP_BOMB_MIB), {"Content-Encoding": "gzip"})
        elif mode == "garbage":
            self._write(writer, 200, b"<html>not json</html>")
        elif mode == "redirect":
            self._write(writer, 302, b"", {"Location": self.redirect_to})
        else:
            n_rows = _row_count(body)
            probability = 1.5 if mode == "bad_probability" else 0.25
            count = n_rows - 1 if mode == "wrong_rows" else n_rows
            answer = {
                "data": [
                    [i, {"output_feature_0": 1 - probability, "output_feature_1": probability}]
                    for i in range(count)
                ]
            }
            payload = json.dumps(answer).encode()
            if mode == "padded_chunked":
                _write_chunked(writer, b" " * self.padding + payload)
            else:
                padding = b" " * self.padding if mode == "padded" else b""
                self._write(writer, 200, padding + payload)
        await writer.drain()
        return True

    def _write(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        _write(writer, status, body, {**self.response_headers, **(headers or {})})


# Responses of the modes that break HTTP. The server closes the connection after each.
_RAW_RESPONSES = {
    "truncated": b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"data": [',
    "malformed": b"NOT HTTP AT ALL\r\n\r\n",
    "bad_encoding": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
}


# Decompressed size of the gzip_bomb mode's body. Its compressed size is about 1 KiB per MiB,
# so 200 MiB (about 207 KB compressed) fits under the body limit of a 50-row call.
GZIP_BOMB_MIB = 200


@functools.cache
def gzip_bomb(mebibytes: int) -> bytes:
    """Return a valid gzip stream of ``mebibytes`` MiB of zeros, about 1 KiB per MiB.

    One MiB of zeros is compressed once and its deflate output repeated: a full flush after it
    aligns the output to a byte and clears the history, so every MiB compresses to the same
    bytes. Building 200 MiB this way took about 50 ms on the development VM, most of it for
    the CRC, where compressing the 200 MiB took about 0.5 s.
    """
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    size = (mebibytes << 20) & 0xFFFFFFFF
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # gzip magic, deflate, no name
    return header + segment * mebibytes + final_block + struct.pack("<II", crc, size)


def _row_count(body: bytes) -> int:
    return len(json.loads(body)["dataframe_split"]["data"])


def _contains_value(body: bytes, value: float) -> bool:
    rows = json.loads(body)["dataframe_split"]["data"]
    return any(value in row for row in rows)


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


def _write(writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str]) -> None:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    writer.write(head.encode() + body)


def _write_chunked(writer: asyncio.StreamWriter, body: bytes, chunk_size: int = 65536) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for start in range(0, len(body), chunk_size):
        chunk = body[start : start + chunk_size]
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    writer.write(b"0\r\n\r\n")


@pytest.fixture
async def faulty_server() -> AsyncIterator[FaultyServer]:
    """A controllable faulty model server, started on a free port."""
    server = FaultyServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens, so connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


# Value that FaultyServer(reject_value=REJECT_MARKER) rejects with 400 wherever it appears.
REJECT_MARKER = 7777.5


def current_state(breaker: CircuitBreaker) -> CircuitState:
    """Return ``breaker.state`` for a test that asserts the state more than once.

    After ``assert breaker.state == X``, mypy keeps the property narrowed to X across the calls
    that change it and flags the next assert as never true. A call's result is never narrowed.
    """
    return breaker.state


def make_scorer(base_url: str, registry: CollectorRegistry, **settings: object) -> RiskScorer:
    """Build a RiskScorer for ``base_url`` with a 2 s deadline and a breaker that opens at 2."""
    options: dict[str, object] = {
        "base_url": base_url,
        "deadline_ms": 2000,
        "breaker_failure_threshold": 2,
        "breaker_cooldown_seconds": 30,
        "reason_profile_dir": None,
        **settings,
    }
    return RiskScorer.from_settings(ClientSettings(**options), registry=registry)  # type: ignore[arg-type]


# Deadline for client tests about something other than timing, so that a loaded machine cannot
# turn their failure into a timeout.
ROOMY = 1.0
# Scheduling slack allowed beyond a deadline when other test suites load the machine.
SLACK = 0.25


def roomy_client(base_url: str, **kwargs: object) -> ModelClient:
    """A ``ModelClient`` with the ``ROOMY`` deadline unless ``kwargs`` sets another."""
    options: dict[str, object] = {"deadline_seconds": ROOMY, **kwargs}
    return ModelClient(base_url, **options)  # type: ignore[arg-type]
