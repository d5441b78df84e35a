"""Start, watch and stop the stack's processes: honcho runs the Procfile, we wait on HTTP."""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import httpx
import psutil  # type: ignore[import-untyped]
from evidence_features import FEATURE_NAMES, FEATURE_SPEC

from evidence_gateway.stack.layout import StackLayout

__all__ = [
    "ProcessGroup",
    "StackError",
    "dashboard_available",
    "has_model_artifact",
    "train_model",
    "wait_until",
    "warm_up_model",
]


class StackError(RuntimeError):
    """The stack could not be brought up; the message names the process and its log file."""


def has_model_artifact(model_dir: Path) -> bool:
    """Tell whether ``model_dir`` contains a trained artifact (``model.joblib`` and metadata)."""
    return (model_dir / "model.joblib").is_file() and (model_dir / "metadata.json").is_file()


def dashboard_available() -> bool:
    """Tell whether the dashboard package with its Streamlit app and CLI is installed."""
    try:
        return (
            importlib.util.find_spec("evidence_dashboard.app") is not None
            and importlib.util.find_spec("evidence_dashboard.cli") is not None
        )
    except ModuleNotFoundError:
        return False


def _script(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        msg = f"command {name!r} not found next to {sys.executable} or on PATH; run `make setup`"
        raise StackError(msg)
    return found


def train_model(model_dir: Path, *, rows: int, seed: int, log: IO[str]) -> float:
    """Train a model on generated evidence into ``model_dir``; return the seconds it took.

    Raises:
        StackError: ``evidence-train`` failed; its output is in the stack log.
    """
    command = [
        _script("evidence-train"),
        "--synthetic",
        str(rows),
        "--seed",
        str(seed),
        "--out",
        str(model_dir),
    ]
    started = time.perf_counter()
    # The command is built from fixed arguments and the project's own console script.
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)  # noqa: S603
    if result.returncode != 0:
        msg = f"evidence-train exited with {result.returncode}; see {log.name}"
        raise StackError(msg)
    return time.perf_counter() - started


def wait_until(
    what: str,
    probe: Callable[[], bool],
    *,
    timeout: float,
    alive: Callable[[], bool],
    interval: float = 0.2,
) -> float:
    """Poll ``probe`` until it returns True; return the seconds waited.

    Raises:
        StackError: the timeout passed, or ``alive`` reported that the processes exited.
    """
    started = time.perf_counter()
    while True:
        if probe():
            return time.perf_counter() - started
        if not alive():
            msg = f"the stack's processes exited while waiting for {what}"
            raise StackError(msg)
        if time.perf_counter() - started > timeout:
            msg = f"{what} not ready after {timeout:.0f} s"
            raise StackError(msg)
        time.sleep(interval)


def http_ok(url: str, *, accept: Callable[[httpx.Response], bool] | None = None) -> bool:
    """Tell whether ``GET url`` returns 200 (and satisfies ``accept``) within one second."""
    try:
        response = httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    return accept(response) if accept is not None else True


def warm_up_model(model_url: str) -> bool:
    """Send one all-defaults row to the model server so its first real call is not cold.

    The first ``predict_proba`` of a freshly loaded model can take a second, far beyond the
    gateway's model deadline. Nothing is persisted: the call bypasses the gateway.
    """
    columns = list(FEATURE_NAMES)
    body = {
        "dataframe_split": {
            "index": [0],
            "columns": columns,
            "data": [[spec.default for spec in FEATURE_SPEC]],
        }
    }
    try:
        response = httpx.post(f"{model_url}/predict-proba", json=body, timeout=30.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


class ProcessGroup:
    """The Procfile's processes under one ``honcho start``, with output to a log file.

    honcho runs in its own session so a Ctrl-C in the terminal reaches only this program,
    which then stops honcho, and honcho stops the processes.
    """

    def __init__(self, layout: StackLayout, names: Sequence[str], env: dict[str, str]) -> None:
        self.layout = layout
        self.names = list(names)
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Start honcho with the selected Procfile entries."""
        procfile = self.layout.root / "Procfile"
        if not procfile.is_file():
            msg = f"no Procfile in {str(self.layout.root)!r}; run from the repository root"
            raise StackError(msg)
        command = [
            sys.executable,
            "-m",
            "honcho",
            "start",
            "--procfile",
            str(procfile),
            "--app-root",
            str(self.layout.root),
            *self.names,
        ]
        self._log = self.layout.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed command: honcho and our Procfile
            command,
            cwd=self.layout.root,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        """Tell whether honcho still runs (it exits once any of its processes exits)."""
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        """Block until honcho exits; return its exit status."""
        if self._process is None:
            return 0
        return self._process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask honcho to stop its processes; kill the whole session if it does not in time."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(process.pid)
                process.wait(timeout=5.0)
        if self._log is not None:
            self._log.close()
            self._log = None


def _kill_tree(pid: int) -> None:
    # honcho starts each process in a session of its own, so a signal to honcho's group would
    # miss them: collect the descendants first, then kill them and honcho.
    try:
        parent = psutil.Process(pid)
        victims = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
