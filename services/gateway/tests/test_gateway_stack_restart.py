"""``evidence-stack`` serving: a stopped process is restarted and the others keep serving.

Each test runs the real stack (model server, gateway, worker) on free ports with a model that
the stack trains on 200 generated applicants, about 10 to 20 s per stack on two cores.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest
from evidence_gateway.testing import free_port, script_path

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
RX_XML = (
    "<IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName>"
    "</DrugFill></IntelRXResponse>"
)


class RunningStack:
    """``evidence-stack`` as a subprocess, with its output in a file."""

    def __init__(self, directory: Path) -> None:
        self.var_dir = directory / "var"
        self.output_path = directory / "stack-output.txt"
        self.gateway_port = free_port()
        self.model_port = free_port()
        self._output: IO[str] = self.output_path.open("w")
        self.process = subprocess.Popen(
            [
                script_path("evidence-stack"),
                "--root", str(REPO_ROOT),
                "--var-dir", str(self.var_dir),
                "--gateway-port", str(self.gateway_port),
                "--model-port", str(self.model_port),
                "--no-dashboard",
                "--train-rows", "200",
            ],
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    @property
    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8")

    def wait_for_output(self, text: str, timeout: float) -> None:
        wait_for(lambda: text in self.output, timeout, f"{text!r} in the stack's output")

    def supervisord(self) -> psutil.Process:
        pid = int((self.var_dir / "supervisord.pid").read_text().strip())
        return psutil.Process(pid)

    def process_tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def child(self, command_name: str) -> psutil.Process:
        for process in self.supervisord().children():
            if any(command_name in part for part in process.cmdline()):
                return process
        msg = f"no {command_name} process under supervisord"
        raise AssertionError(msg)

    def predict(self) -> str:
        response = httpx.post(
            f"http://127.0.0.1:{self.gateway_port}/v1/predict",
            json={"policy_number": "RESTART-1", "mib_xml": None, "rx_xml": RX_XML},
            timeout=10.0,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["model_version"])

    def close(self) -> None:
        if self.process.poll() is None:
            for process in self.process_tree()[::-1]:
                process.kill()
            self.process.wait(timeout=10)
        self._output.close()


def wait_for(condition: Callable[[], bool], timeout: float, description: str) -> None:
    """Poll ``condition`` every 0.2 s; fail the test naming ``description`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {description}")
        time.sleep(0.2)


def port_is_free(port: int) -> bool:
    """Tell whether nothing accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def all_gone(processes: list[psutil.Process]) -> bool:
    """Tell whether every process has exited (zombies count as exited)."""
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


@pytest.fixture
def running_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """A serving stack; killed with its processes if a test leaves it running."""
    stack = RunningStack(tmp_path)
    try:
        stack.wait_for_output("serving; press Ctrl-C to stop", timeout=180)
        yield stack
    finally:
        stack.close()


def test_stack_restarts_stopped_model_server(running_stack: RunningStack) -> None:
    """SIGTERM to the model server: it exits 0, RULE_BASED meanwhile, REGISTRY_V2 after restart."""
    stack = running_stack
    assert stack.predict() == "REGISTRY_V2"
    model = stack.child("evidence-model-server")
    gateway = stack.child("evidence-gateway")

    model.send_signal(signal.SIGTERM)
    wait_for(
        lambda: stack.predict() == "RULE_BASED",
        timeout=15,
        description="a RULE_BASED prediction while the model server is down",
    )
    wait_for(lambda: stack.predict() == "REGISTRY_V2", timeout=90, description="REGISTRY_V2 again")

    assert stack.process.poll() is None
    assert gateway.is_running()
    assert stack.child("evidence-model-server").pid != model.pid
    stack.wait_for_output("process started: 'model'", timeout=10)
    output = " ".join(stack.output.split())
    assert "process exited: model (exit status 0)" in output

    processes = stack.process_tree()
    # Twice, as a process-group SIGTERM arrives under `uv run`: once directly, once from uv.
    stack.process.send_signal(signal.SIGTERM)
    stack.wait_for_output("stopping", timeout=10)
    stack.process.send_signal(signal.SIGTERM)

    assert stack.process.wait(timeout=60) == 0
    wait_for(lambda: all_gone(processes), timeout=10, description="every stack process to exit")
    assert port_is_free(stack.gateway_port)
    assert port_is_free(stack.model_port)


def test_stack_stop_stores_returned_predictions(running_stack: RunningStack) -> None:
    """SIGTERM during a burst: every prediction returned with 200 reaches the store.

    The gateway stops before the worker, so the worker's stop drain reads every record that
    the gateway accepted. The model stops last, so no response falls back to the rule-based
    score.
    """
    stack = running_stack
    returned: list[dict[str, object]] = []
    stop = threading.Event()

    def burst() -> None:
        with httpx.Client(timeout=10.0) as client:
            while not stop.is_set():
                rows = [[row, f"STOP-{row}", None, RX_XML] for row in range(20)]
                try:
                    response = client.post(
                        f"http://127.0.0.1:{stack.gateway_port}/functions/predict",
                        json={"data": rows},
                    )
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    returned.extend(row[1] for row in response.json()["data"])

    senders = [threading.Thread(target=burst) for _ in range(4)]
    for sender in senders:
        sender.start()
    wait_for(lambda: len(returned) >= 200, timeout=60, description="200 returned rows")
    stack.process.send_signal(signal.SIGTERM)
    stack.wait_for_output("stopping", timeout=10)
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0
    stop.set()
    for sender in senders:
        sender.join(timeout=20)

    ids = {str(row["prediction_id"]) for row in returned}
    assert {row["model_version"] for row in returned} == {"REGISTRY_V2"}
    connection = sqlite3.connect(stack.var_dir / "store.sqlite3")
    try:
        stored = {
            row[0]
            for row in connection.execute("SELECT PREDICTION_ID FROM ML_MODELS__MODEL_PREDICTIONS")
        }
    finally:
        connection.close()
    assert ids - stored == set()


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT])
def test_stack_back_to_back_signals_exit_0(running_stack: RunningStack, first: int) -> None:
    """Two signals with no pause between them, as `uv run` forwards one: a clean stop, exit 0."""
    stack = running_stack
    processes = stack.process_tree()

    stack.process.send_signal(first)
    stack.process.send_signal(signal.SIGTERM)

    assert stack.process.wait(timeout=60) == 0
    assert "stopped in" in stack.output
    wait_for(lambda: all_gone(processes), timeout=10, description="every stack process to exit")
    assert port_is_free(stack.gateway_port)


def test_stack_sigkill_stops_processes(running_stack: RunningStack) -> None:
    """SIGKILL of evidence-stack makes supervisord stop every process and free the ports."""
    stack = running_stack
    processes = stack.process_tree()
    assert len(processes) >= 5

    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait(timeout=10)

    wait_for(lambda: all_gone(processes), timeout=40, description="every stack process to exit")
    assert port_is_free(stack.gateway_port)
    assert port_is_free(stack.model_port)
