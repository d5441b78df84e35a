"""The runtime folder's lock: one ``evidence-stack`` per folder, any number of folders."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidence_gateway.stack.var_lock import LOCK_FILE_NAME, VarDirLock, VarDirLockedError
from evidence_gateway.testing import free_port, script_path

REPO_ROOT = Path(__file__).resolve().parents[3]
# Files of a running stack that a second stack on its folder used to rewrite, delete or extend.
RUNNING_STACK_FILES = {
    "supervisord.conf": "[supervisord]\nnodaemon=true\n",
    "supervisord.pid": "4242\n",
    "stack.log": "2026-12-05 01:28:57,390 INFO spawned: 'gateway' with pid 25090\n",
}


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[VarDirLock]:
    """Return the lock of ``tmp_path/var``, held by this process, beside a stack's files."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    for name, text in RUNNING_STACK_FILES.items():
        (var_dir / name).write_text(text)
    lock = VarDirLock(var_dir)
    lock.acquire()
    yield lock
    lock.release()


@pytest.fixture
def listener() -> Iterator[int]:
    """A socket listening on a free port of 127.0.0.1, as another stack's server would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _run_stack(var_dir: Path, gateway_port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script_path("evidence-stack"), "--once", "--root", str(REPO_ROOT),
         "--var-dir", str(var_dir), "--gateway-port", str(gateway_port),
         "--model-port", str(free_port()), "--dashboard-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Return every file below ``folder`` with its bytes and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_lock_writes_holder_pid(held_lock: VarDirLock) -> None:
    """The holder writes its process id into the lock file."""
    assert held_lock.path == held_lock.var_dir / LOCK_FILE_NAME
    assert held_lock.path.read_text() == f"{os.getpid()}\n"
    assert held_lock.fileno is not None


def test_lock_second_holder_rejected(held_lock: VarDirLock) -> None:
    """A second lock on the same folder fails at once and names the folder and the holder."""
    second = VarDirLock(held_lock.var_dir)

    with pytest.raises(VarDirLockedError) as raised:
        second.acquire()

    assert raised.value.holder_pid == os.getpid()
    assert raised.value.var_dir == held_lock.var_dir
    assert str(held_lock.var_dir) in str(raised.value)
    assert f"pid {os.getpid()}" in str(raised.value)
    assert "--var-dir" in str(raised.value)
    assert second.fileno is None
    assert held_lock.path.read_text() == f"{os.getpid()}\n"


def test_lock_free_after_release(held_lock: VarDirLock) -> None:
    """Once released, the folder can be locked again, and the lock file stays."""
    held_lock.release()
    second = VarDirLock(held_lock.var_dir)

    second.acquire()

    assert held_lock.path.is_file()
    second.release()


def test_lock_other_folder_independent(held_lock: VarDirLock, tmp_path: Path) -> None:
    """A lock on another folder is taken while the first is held."""
    other_dir = tmp_path / "other-var"
    other_dir.mkdir()
    other = VarDirLock(other_dir)

    other.acquire()

    assert other.fileno is not None
    other.release()


def test_lock_released_on_sigkill(tmp_path: Path) -> None:
    """The kernel drops the lock of a holder killed with SIGKILL."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from evidence_gateway.stack.var_lock import VarDirLock\n"
        "VarDirLock(Path(sys.argv[1])).acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(var_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(VarDirLockedError) as raised:
            VarDirLock(var_dir).acquire()
        assert raised.value.holder_pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()

    lock = VarDirLock(var_dir)
    lock.acquire()

    assert (var_dir / LOCK_FILE_NAME).read_text() == f"{os.getpid()}\n"
    lock.release()


def test_stack_same_folder_exits_2(held_lock: VarDirLock) -> None:
    """A second evidence-stack on a locked folder exits 2 and leaves every file unchanged."""
    before = _snapshot(held_lock.var_dir)
    started = time.monotonic()

    result = _run_stack(held_lock.var_dir, free_port())

    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert f"the runtime folder '{held_lock.var_dir}' is in use by another evidence-stack" in output
    assert f"(pid {os.getpid()})" in output
    assert "pass --var-dir with another folder" in output
    assert "nothing was started" in output
    assert _snapshot(held_lock.var_dir) == before
    # The lock comes before the settings checks and the training, so the exit is quick: 0.7 s
    # on a 2-core VM. The bound leaves room for a loaded machine.
    assert elapsed < 30


def test_stack_other_folder_not_blocked(
    held_lock: VarDirLock, listener: int, tmp_path: Path
) -> None:
    """A stack on another folder passes the lock and stops only at the taken port."""
    other_dir = tmp_path / "other-var"
    other_dir.mkdir()

    result = _run_stack(other_dir, listener)

    assert result.returncode == 2, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert "is in use by another evidence-stack" not in output
    assert f"port {listener} of the gateway on 127.0.0.1 is already in use" in output
    assert (other_dir / LOCK_FILE_NAME).is_file()
    assert held_lock.path.read_text() == f"{os.getpid()}\n"
