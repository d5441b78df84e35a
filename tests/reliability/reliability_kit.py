"""Helpers of the reliability tests: canary documents, piped processes, a faulty model server.

The canary values are made-up health data planted in the documents these tests send. The
fixtures in conftest.py check every process log for them when they stop the process.

Process start-up comes from ``evidence_gateway.testing`` (``ServerProcess``, ``start_gateway``,
``start_worker``, ``free_port``, ``script_path``). This kit keeps only what that module lacks:
output through a pipe, signals and waiting for the exit (``PipedProcess``), extra environment
for the worker, and the gateway environment for a command of the test's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH, FEATURE_SPEC_VERSION
from evidence_gateway.testing import ServerProcess, free_port, script_path
from evidence_persistence import PredictionRecord

API_TOKEN = "rel-test-token-7f3a9c2e51d84b06"  # noqa: S105 - test-only token for a local process

# Made-up health data planted in the documents. None of these strings may appear in a log
# line, a metrics scrape, an error message or a validation error.
CANARY_FIRST_NAME = "ZEPHYRINA"
CANARY_LAST_NAME = "QUILLFEATHERSTONE"
CANARY_BIRTH_DATE = "1937-07-13"
CANARY_DRUG = "CANARYZOLAMIDE"
CANARY_MIB_CODE = "9ZQX"
CANARY_PHYSICIAN = "HOLLOWBRIDGE, ODALYS"
CANARIES = (
    CANARY_FIRST_NAME,
    CANARY_LAST_NAME,
    CANARY_BIRTH_DATE,
    CANARY_DRUG,
    CANARY_MIB_CODE,
    CANARY_PHYSICIAN,
)

CANARY_MIB = f"""<?xml version="1.0" encoding="UTF-8"?>
<TXLife xmlns="http://ACORD.org/Standards/Life/2" Version="2.43.00">
  <TXLifeResponse>
    <TransType tc="401">MIB Inquiry</TransType>
    <TransExeDate>2026-03-16</TransExeDate>
    <OLifE>
      <Party id="P_SUBJ"><Person><FirstName>{CANARY_FIRST_NAME}</FirstName>
        <LastName>{CANARY_LAST_NAME}</LastName><BirthDate>{CANARY_BIRTH_DATE}</BirthDate></Person>
      </Party>
      <Party id="P_CO1"><Carrier><CarrierCode>XA1</CarrierCode></Carrier></Party>
      <FormInstance id="F1" ProviderPartyID="P_CO1">
        <FormName>MIB</FormName>
        <SubmitDate>2025-08-20</SubmitDate>
        <FormResponse id="FR1_1"><ResponseData>{CANARY_MIB_CODE}</ResponseData></FormResponse>
        <FormResponse id="FR1_2"><ResponseData>311C</ResponseData></FormResponse>
      </FormInstance>
    </OLifE>
  </TXLifeResponse>
</TXLife>
"""

CANARY_RX = f"""<?xml version="1.0" encoding="UTF-8"?>
<IntelRX>
  <IntelRXResponse>
    <Result>HIT</Result>
    <ReportDate>2026-03-16</ReportDate>
    <Applicant><FirstName>{CANARY_FIRST_NAME}</FirstName><LastName>{CANARY_LAST_NAME}</LastName>
      <BirthDate>{CANARY_BIRTH_DATE}</BirthDate></Applicant>
    <DrugFill>
      <FillDate>2026-02-12</FillDate>
      <DrugGenericName>{CANARY_DRUG}</DrugGenericName>
      <Quantity>30</Quantity>
      <DaysSupply>30</DaysSupply>
      <PhysicianName>{CANARY_PHYSICIAN}</PhysicianName>
    </DrugFill>
    <DrugFill>
      <FillDate>2026-01-10</FillDate>
      <DrugGenericName>METFORMIN HCL</DrugGenericName>
      <Quantity>180</Quantity>
      <DaysSupply>90</DaysSupply>
    </DrugFill>
  </IntelRXResponse>
</IntelRX>
"""


def find_canaries(text: str) -> list[str]:
    """Return the canary values that occur in ``text``."""
    return [canary for canary in CANARIES if canary in text]


def assert_logs_clean(paths: Sequence[Path]) -> None:
    """Fail when any canary value occurs in any of the log files."""
    leaks = []
    for path in paths:
        if path.is_file():
            found = find_canaries(path.read_text(errors="replace"))
            if found:
                leaks.append(f"{path.name}: {found}")
    assert not leaks, f"canary values found in process logs: {leaks}"


def auth_headers(token: str = API_TOKEN) -> dict[str, str]:
    """Authorization header for the token-protected gateway."""
    return {"Authorization": f"Bearer {token}"}


def build_record(index: int) -> PredictionRecord:
    """Build a valid queue record with id ``prefill-<index>`` and all-zero features."""
    return PredictionRecord(
        prediction_id=f"prefill-{index:06d}",
        policy_number=f"PREFILL-{index}",
        features=tuple(0.0 for _ in FEATURE_NAMES),
        feature_spec_version=FEATURE_SPEC_VERSION,
        risk_score=0.1,
        risk_level="LOW",
        model_name="EVIDENCE_RISK_MODEL",
        model_version="RULE_BASED",
        source="API",
        inference_ms=1.0,
        created_at=datetime.now(UTC),
        fallback_reason=None,
        warnings=(),
    )


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB."""
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


@dataclass
class GatewayUnderTest:
    """A running gateway, the files it writes and its log files."""

    url: str
    directory: Path
    process: ServerProcess | PipedProcess
    token: str | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def queue_path(self) -> Path:
        """The gateway's durable queue file."""
        return self.directory / "queue.sqlite3"

    @property
    def store_path(self) -> Path:
        """The SQLite store the worker writes."""
        return self.directory / "store.sqlite3"

    def headers(self) -> dict[str, str]:
        """Headers every /v1 request needs."""
        return auth_headers(self.token) if self.token else {}


# --- processes ---------------------------------------------------------------------------------


class PipedProcess:
    """A server subprocess whose output goes through a pipe into a log file.

    The pipe matters for tests that limit the process's file size with ``RLIMIT_FSIZE``: a
    log written straight to a file would hit the limit too, while a pipe is not a file.
    ``evidence_gateway.testing.ServerProcess`` writes its log straight to a file and has no
    ``send_signal`` or ``wait``, which the crash and shutdown tests need.

    Args:
        command: Program and arguments.
        env: Extra environment variables.
        log_path: File receiving the output, written by a thread of the test process.
        ready_url: URL polled until it returns 200; None for a process without HTTP.
        timeout: Seconds to wait for readiness.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        ready_url: str | None,
        timeout: float = 120.0,
    ) -> None:
        self.command = list(command)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.log_path = log_path
        self.ready_url = ready_url
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> PipedProcess:
        """Start the process and wait for readiness (or a short settle time)."""
        self._process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()
        if self.ready_url is None:
            time.sleep(0.5)
            if self._process.poll() is not None:
                self._fail("exited at once")
            return self
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                if httpx.get(self.ready_url, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self._fail(f"did not become ready at {self.ready_url}")
        return self

    def _fail(self, problem: str) -> None:
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        msg = f"{self.command[0]} {problem}; log tail:\n{tail}"
        raise RuntimeError(msg)

    def _copy_output(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        with self.log_path.open("ab") as log:
            for line in self._process.stdout:
                log.write(line)
                log.flush()

    @property
    def pid(self) -> int:
        """Process id."""
        assert self._process is not None
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self._process is not None and self._process.poll() is None

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        assert self._process is not None
        self._process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the exit and for its output to be copied; return the exit status."""
        assert self._process is not None
        status = self._process.wait(timeout=timeout)
        if self._pump is not None:
            self._pump.join(timeout=5.0)
        return status

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; wait for the output to be copied."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5.0)
        if process is not None and process.stdout is not None:
            process.stdout.close()


def gateway_env(
    directory: Path, port: int, model_url: str, artifact_dir: Path, **extra: str
) -> dict[str, str]:
    """Environment of a gateway queueing into ``directory``.

    NOTE: this repeats the environment that ``evidence_gateway.testing.start_gateway`` builds
    inline, without its ``MODEL_CLIENT_DEADLINE_MS=3000``. That module does not expose it, and
    tests that start the gateway with their own command or through a pipe need it.
    """
    return {
        "GATEWAY_PORT": str(port),
        "GATEWAY_LOCAL_MODE": "true",
        "GATEWAY_QUEUE_PATH": str(directory / "queue.sqlite3"),
        "GATEWAY_EXTRACTION_WORKERS": "2",
        "MODEL_CLIENT_BASE_URL": model_url,
        "MODEL_CLIENT_REASON_PROFILE_DIR": str(artifact_dir),
        **extra,
    }


def start_piped_gateway(
    directory: Path, model_url: str, artifact_dir: Path, **extra: str
) -> tuple[PipedProcess, str]:
    """Start ``evidence-gateway`` with its output piped; see ``PipedProcess``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = PipedProcess(
        [script_path("evidence-gateway")],
        env=gateway_env(directory, port, model_url, artifact_dir, **extra),
        log_path=directory / f"gateway-{port}.log",
        ready_url=f"{url}/health/live",
    )
    return process.start(), url


def start_piped_worker(directory: Path, **extra: str) -> PipedProcess:
    """Start ``evidence-persistence worker`` on ``directory``'s queue and store.

    Unlike ``evidence_gateway.testing.start_worker``, it takes extra environment variables and
    returns a ``PipedProcess``.
    """
    env = {
        "PERSISTENCE_QUEUE_PATH": str(directory / "queue.sqlite3"),
        "PERSISTENCE_STORE_PATH": str(directory / "store.sqlite3"),
        "PERSISTENCE_POLL_INTERVAL_SECONDS": "0.05",
        **extra,
    }
    log = directory / f"worker-{time.monotonic_ns()}.log"
    process = PipedProcess(
        [script_path("evidence-persistence"), "worker"], env=env, log_path=log, ready_url=None
    )
    return process.start()


# --- faulty model server -----------------------------------------------------------------------


class FaultyModelServer:
    """An HTTP/1.1 model server in a background thread whose behaviour ``mode`` selects.

    It speaks the inference protocol of the local model server (``POST /predict-proba`` with
    ``dataframe_split`` or flat ``data`` rows, ``GET /health``). Modes:

    - ``ok``: probability 0.25 for every row;
    - ``hang``: never responds;
    - ``slow``: responds like ``ok`` after ``delay`` seconds;
    - ``status``: HTTP ``status`` with a plain-text body;
    - ``garbage``: 200 with an HTML body;
    - ``wrong_rows``: one row fewer than requested;
    - ``drop``: closes the connection without a response;
    - ``flap``: alternates ``ok`` and HTTP 500, starting with ``ok``.

    ``refuse()`` closes the listening socket and every open connection, so new connections are
    refused; ``accept()`` listens on the same port again.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.status = 500
        self.predict_calls = 0
        self.predict_rows = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """Root URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyModelServer:
        """Start the loop thread and listen on a free port."""
        self._thread.start()
        self._call(self._listen())
        return self

    def refuse(self) -> None:
        """Stop listening and close open connections."""
        self._call(self._close())

    def accept(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    def stop(self) -> None:
        """Close everything, end the connection tasks and stop the loop thread."""
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        self._loop.close()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10.0)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _shutdown(self) -> None:
        await self._close()
        # A connection task still waiting for its client would otherwise be destroyed pending
        # when the loop closes, and asyncio logs that as an error.
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                if not await self._answer(writer, *request):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(
        self, writer: asyncio.StreamWriter, method: str, path: str, body: bytes
    ) -> bool:
        if method == "GET" and path == "/health":
            health = {
                "model_name": "EVIDENCE_RISK_MODEL",
                "model_version": "V9",
                "feature_spec_hash": FEATURE_SPEC_HASH,
            }
            _write(writer, 200, json.dumps(health).encode())
            await writer.drain()
            return True
        self.predict_calls += 1
        self.predict_rows += _row_count(body)
        mode = self.mode
        if mode == "flap":
            mode = "ok" if self.predict_calls % 2 == 1 else "status"
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "drop":
            return False
        if mode == "slow":
            await asyncio.sleep(self.delay)
        if mode == "status":
            _write(writer, self.status, b"model failed", content_type="text/plain")
        elif mode == "garbage":
            _write(writer, 200, b"<html><body>502 Bad Gateway</body></html>")
        else:
            count = _row_count(body) - (1 if mode == "wrong_rows" else 0)
            answer = {
                "data": [
                    [i, {"output_feature_0": 0.75, "output_feature_1": 0.25}] for i in range(count)
                ]
            }
            _write(writer, 200, json.dumps(answer).encode())
        await writer.drain()
        return True


def _row_count(body: bytes) -> int:
    try:
        payload = json.loads(body)
    except ValueError:
        return 0
    if "dataframe_split" in payload:
        return len(payload["dataframe_split"]["data"])
    return len(payload["data"])


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def _write(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
) -> None:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
