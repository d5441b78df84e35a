"""Train the stack's model, find its console scripts and wait for its processes over HTTP."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
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
    "check_model_dir",
    "dashboard_available",
    "find_script",
    "has_model_artifact",
    "install_model",
    "train_model",
    "wait_until",
    "warm_up_model",
]


TRAINING_STOP_SECONDS = 10.0
"""Time between SIGINT and SIGKILL when the stack stops ``evidence-train``."""
_TRAINING_POLL_SECONDS = 0.1


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
        [find_script("evidence-dashboard"), "--check-settings"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode == 0:
        return None
    return result.stderr or f"evidence-dashboard --check-settings exited with {result.returncode}\n"


def find_script(name: str) -> str:
    """Return the path of the project's console script ``name``.

    Raises:
        StackError: the script is neither next to this interpreter nor on PATH.
    """
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

    ``evidence-train`` writes into ``<model_dir>.partial``, which replaces ``model_dir`` only
    once training succeeded, so an interrupted run leaves no artifact that a later run loads.
    It runs in its own process group with its worker processes. A ``KeyboardInterrupt`` here
    (Ctrl-C, or SIGTERM turned into one) stops that whole group before it propagates.

    ``model_dir`` must be missing or an empty folder. The stack never deletes what is in it,
    because an operator may have copied an artifact there, so anything else stops the stack
    before training.

    Raises:
        StackError: ``model_dir`` is neither missing nor an empty folder, ``evidence-train``
            failed (its output is in the stack log), or the new model could not be moved.
    """
    check_model_dir(model_dir)
    staging = model_dir.with_name(f"{model_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        find_script("evidence-train"),
        "--synthetic",
        str(rows),
        "--seed",
        str(seed),
        "--out",
        str(staging),
    ]
    started = time.perf_counter()
    # NOTE: a SIGKILL of the stack leaves training running to its end in model.partial, which
    # the next run deletes. A parent-death signal would reach evidence-train but not its
    # workers, which then finish their chunk first. The command is built from fixed arguments
    # and the project's own console script.
    process = subprocess.Popen(  # noqa: S603
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        returncode = _wait_for_group(process)
    except BaseException:
        _stop_training(process)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        msg = f"evidence-train exited with {returncode}; see {log.name}"
        raise StackError(msg)
    install_model(staging, model_dir)
    # evidence-train's own last line names the staging folder, which no longer exists.
    log.write(f"evidence-stack: moved the trained model from {staging} to {model_dir}\n")
    return time.perf_counter() - started


def check_model_dir(model_dir: Path) -> None:
    """Check that training may write ``model_dir``: it is missing or an empty real folder.

    A folder with files but no complete artifact is most likely an artifact copy that failed
    or is still running, and a symbolic link points to where the operator keeps a model. An
    operator then expects that model served, not a new one trained on generated data, so the
    stack stops and names the path.

    Raises:
        StackError: ``model_dir`` is a symbolic link, a file, a folder that is not empty, or
            cannot be read. The message names the path and the fix.
    """
    artifact = "complete artifact (model.joblib and metadata.json)"
    if model_dir.is_symlink():
        target = model_dir.readlink()
        msg = (
            f"{model_dir} is a symbolic link to {target}, which contains no {artifact}; "
            f"copy the artifact there, or remove the link so that the stack trains a model"
        )
        raise StackError(msg)
    if not model_dir.exists():
        return
    if not model_dir.is_dir():
        msg = f"{model_dir} is not a folder; move it away so that the stack trains a model"
        raise StackError(msg)
    try:
        empty = next(model_dir.iterdir(), None) is None
    except OSError as exc:
        msg = f"cannot read {model_dir} ({exc.strerror}); fix its permissions or move it away"
        raise StackError(msg) from exc
    if not empty:
        msg = (
            f"{model_dir} contains files but no {artifact}, and the stack does not delete "
            f"them; finish copying the artifact, or move the folder away so that the stack "
            f"trains a model"
        )
        raise StackError(msg)


def install_model(staging: Path, model_dir: Path) -> None:
    """Move the trained artifact in ``staging`` to ``model_dir``, which must be missing or empty.

    ``rename`` replaces only an empty folder and fails on anything else, so files that
    appeared in ``model_dir`` during training stay as they are.

    Raises:
        StackError: the move failed; ``staging`` keeps the new model until the next run.
    """
    try:
        staging.rename(model_dir)
    except OSError as exc:
        msg = (
            f"cannot move the trained model from {staging} to {model_dir} ({exc.strerror}); "
            f"move {model_dir} away, then rename {staging} to {model_dir} or run the stack "
            f"again, which deletes {staging} and trains anew"
        )
        raise StackError(msg) from exc


def _wait_for_group(process: subprocess.Popen[bytes]) -> int:
    """Wait until ``process`` exits, kill what is left of its process group, then reap it.

    The process stays a zombie until it is reaped, so its pid, which is the group's id, cannot
    name another group while the leftovers (forked workers) are killed.
    """
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        time.sleep(_TRAINING_POLL_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


def _stop_training(process: subprocess.Popen[bytes]) -> None:
    """Stop ``evidence-train`` and its workers: SIGINT to the group, SIGKILL after a grace time.

    evidence-train handles SIGINT as Ctrl-C and exits with status 130, unless it inherited
    SIGINT as ignored (``nohup``, a background job), and then SIGKILL ends it. A second signal
    to the stack is ignored meanwhile, because it would cut the stop short.
    """
    previous = {
        number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + TRAINING_STOP_SECONDS
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                break
            time.sleep(_TRAINING_POLL_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


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
