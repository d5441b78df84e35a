"""Ctrl-C or SIGTERM while ``evidence-stack`` trains its first model.

Each test starts the real stack on free ports with an empty runtime folder, waits until
``evidence-train`` has forked its feature workers, then signals the stack as a terminal or a
supervisor would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from evidence_gateway.testing import free_port, script_path

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]


def _start_stack(var_dir: Path, output: Path) -> subprocess.Popen[bytes]:
    # Its own process group, as a shell gives a foreground job, so that a group signal reaches
    # only the stack and what it started.
    with output.open("wb") as sink:
        return subprocess.Popen(
            [
                script_path("evidence-stack"),
                "--once",
                "--root", str(REPO_ROOT),
                "--var-dir", str(var_dir),
                "--gateway-port", str(free_port()),
                "--model-port", str(free_port()),
                "--no-dashboard",
                "--train-rows", "4000",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )  # fmt: skip


def _training_processes(stack: psutil.Process, timeout: float) -> list[psutil.Process]:
    """Return evidence-train and its workers once it has forked at least one worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in stack.children():
            try:
                if "evidence-train" not in " ".join(child.cmdline()):
                    continue
                workers = child.children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            if workers:
                return [child, *workers]
        time.sleep(0.05)
    pytest.fail(f"evidence-train forked no worker within {timeout} s")


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[psutil.Process]]]:
    """The stack during training, with its training processes; all are killed at the end."""
    stack = _start_stack(tmp_path / "var", tmp_path / "stack-output.txt")
    training: list[psutil.Process] = []
    try:
        training = _training_processes(psutil.Process(stack.pid), timeout=60)
        yield stack, training
    finally:
        for process in _alive(training):
            process.kill()
        if stack.poll() is None:
            stack.kill()
            stack.wait(timeout=10)


@pytest.mark.parametrize(
    ("signal_number", "to_group", "status"),
    [
        (signal.SIGINT, True, 130),
        (signal.SIGTERM, False, 143),
        (signal.SIGTERM, True, 143),
    ],
    ids=["ctrl-c-to-group", "sigterm-to-stack", "sigterm-to-group"],
)
def test_stack_interrupted_training_stops(
    tmp_path: Path,
    started: tuple[subprocess.Popen[bytes], list[psutil.Process]],
    signal_number: int,
    to_group: bool,
    status: int,
) -> None:
    """A signal during training stops the trainer and its workers and leaves no model."""
    stack, training = started

    if to_group:
        os.killpg(stack.pid, signal_number)
    else:
        stack.send_signal(signal_number)

    output = tmp_path / "stack-output.txt"
    returncode = stack.wait(timeout=60)
    time.sleep(0.5)
    assert _alive(training) == []
    assert returncode == status, output.read_text()
    var_dir = tmp_path / "var"
    assert not (var_dir / "model").exists()
    assert not (var_dir / "model.partial").exists()
    assert "stopping" in output.read_text()
    # The training output, with that of its workers, goes to the stack log.
    assert "Traceback" not in (var_dir / "stack.log").read_text()
