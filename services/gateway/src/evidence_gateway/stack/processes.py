"""Train the stack's model, find its console scripts and wait for its processes over HTTP."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx
from evidence_features import FEATURE_NAMES, FEATURE_SPEC

__all__ = [
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


def dashboard_settings_problem(environment: dict[str, str]) -> str | None:
    """Check the ``DASHBOARD_*`` settings in ``environment`` with the dashboard's own command.

    Returns:
        None when they are valid, else the error that ``evidence-dashboard --check-settings``
        wrote, which names each invalid variable.
    """
    result = subprocess.run(  # noqa: S603 - the installed console script, no shell
        [_script("evidence-dashboard"), "--check-settings"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode == 0:
        return None
    return result.stderr or f"evidence-dashboard --check-settings exited with {result.returncode}\n"


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
