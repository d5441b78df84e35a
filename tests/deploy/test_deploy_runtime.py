"""Run each image's command with the environment compose gives it, and probe its HEALTHCHECK.

No Docker engine exists here, so each container becomes a process on 127.0.0.1: the runtime
stage's ENV, the service's compose environment and .env.example, with bind addresses moved to
127.0.0.1, ports to free ones and /var/lib/evidence to a temporary directory. A process that
fails to start with that environment, or whose health URL never returns 200, fails the test.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

_REPO = Path(__file__).resolve().parents[2]
_BIN = _REPO / ".venv" / "bin"
_VOLUME = "/var/lib/evidence"
_START_TIMEOUT_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _final_stage(dockerfile: Path) -> tuple[dict[str, str], list[str], str]:
    """Return the runtime stage's ENV, CMD words and HEALTHCHECK URL."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    final = text[text.rindex("\nFROM ") :]
    environment: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                environment[key] = value
    cmd = re.search(r"^CMD (.*)$", final, re.MULTILINE)
    assert cmd is not None
    command = re.findall(r'"([^"]+)"', cmd.group(1))
    url = re.search(r"urlopen\('([^']+)'", final)
    assert url is not None
    return environment, command, url.group(1)


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


class LocalContainers:
    """Start compose services as local processes with remapped addresses, ports and paths."""

    def __init__(self, compose: dict[str, Any], root: Path) -> None:
        self.compose = compose
        self.root = root
        self.ports: dict[tuple[str, str], str] = {}
        self.processes: list[subprocess.Popen[bytes]] = []

    def port(self, service: str, original: str) -> str:
        """Return the free local port standing in for ``service``'s container port."""
        key = (service, original)
        if key not in self.ports:
            self.ports[key] = str(_free_port())
        return self.ports[key]

    def remap(self, service: str, key: str, value: str) -> str:
        """Translate one container setting to its local equivalent."""
        if key.endswith("_HOST") and value == "0.0.0.0":  # noqa: S104 - the container's value
            return "127.0.0.1"
        if key.endswith("_PORT"):
            return self.port(service, value)
        if value.startswith(_VOLUME):
            return str(self.root / value.removeprefix(_VOLUME).lstrip("/"))
        if key.endswith("_URL"):
            parts = urlsplit(value)
            if parts.hostname is not None and parts.hostname in self.compose["services"]:
                port = self.port(parts.hostname, str(parts.port))
                return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))
        return value

    def start(self, service: str) -> str:
        """Start ``service`` and return its local health-check URL once it returns 200."""
        definition = self.compose["services"][service]
        image_env, command, health_url = _final_stage(_REPO / definition["build"]["dockerfile"])
        environment = dict(image_env)
        environment.pop("PATH", None)
        environment |= _read_env_file(_REPO / ".env.example")
        environment |= {key: str(value) for key, value in definition["environment"].items()}
        local = {key: self.remap(service, key, value) for key, value in environment.items()}
        local["PATH"] = f"{_BIN}{os.pathsep}{os.environ['PATH']}"
        local["HOME"] = str(self.root)
        parts = urlsplit(health_url)
        url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port(service, str(parts.port))}"))

        with (self.root / f"{service}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(_BIN / command[0]), *command[1:]],
                env=local,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = (self.root / f"{service}.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"{service} exited with {process.returncode}:\n{output}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{service} did not answer 200 on {url} within {_START_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        """Terminate every started process, killing any that ignores SIGTERM."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def containers(tmp_path: Path, support: ModuleType) -> Iterator[LocalContainers]:
    """A LocalContainers over docker-compose.yml, stopped after the test."""
    compose = support.load_compose()
    (tmp_path / "model").mkdir()
    group = LocalContainers(compose, tmp_path)
    try:
        yield group
    finally:
        group.stop()


def test_remap_moves_addresses_ports_and_paths(tmp_path: Path, support: ModuleType) -> None:
    """Bind addresses, ports, volume paths and service URLs all move to local equivalents."""
    compose: dict[str, Any] = {"services": {"risk-model-svc": {}, "gateway": {}}}
    group = LocalContainers(compose, tmp_path)

    assert group.remap("gateway", "GATEWAY_HOST", "0.0.0.0") == "127.0.0.1"  # noqa: S104
    assert group.remap("gateway", "GATEWAY_QUEUE_PATH", f"{_VOLUME}/queue.sqlite3") == str(
        tmp_path / "queue.sqlite3"
    )
    port = group.remap("risk-model-svc", "MODEL_SERVER_PORT", "5000")
    assert port != "5000"
    assert group.remap("gateway", "MODEL_CLIENT_BASE_URL", "http://risk-model-svc:5000") == (
        f"http://127.0.0.1:{port}"
    )
    assert group.remap("gateway", "GATEWAY_LOG_FORMAT", "json") == "json"


@pytest.mark.slow
def test_compose_processes_pass_their_healthchecks(containers: LocalContainers) -> None:
    """Model server, gateway, worker and dashboard start and pass their image HEALTHCHECK."""
    for service in ("risk-model-svc", "gateway", "worker", "dashboard"):
        containers.start(service)

    ready = httpx.get(
        f"http://127.0.0.1:{containers.port('gateway', '8000')}/health/ready", timeout=5.0
    )
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
