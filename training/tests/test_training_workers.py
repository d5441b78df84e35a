"""Tests of chunked work in forked workers and of the command line's lazy imports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import evidence_training
import numpy as np
import pytest
from evidence_synthetic import generate_pairs, write_pairs
from evidence_training.dataset import load_directory_set
from evidence_training.errors import WorkerError
from evidence_training.workers import run_chunks


def _square(value: int) -> int:
    return value * value


def _fail(value: int) -> int:
    msg = f"chunk {value} failed"
    raise ValueError(msg)


def _sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_run_chunks_workers_ignore_sigint() -> None:
    """Workers leave Ctrl-C to this process, which stops the pool."""
    results = run_chunks([_sigint_ignored] * 4, sizes=[1] * 4, jobs=2, progress=False)

    assert results == [True] * 4
    assert not _sigint_ignored()


# Prints "ready" once its handler is installed, starts two-worker pools in a loop for the
# given seconds, then prints how many it ran. The SIGINT handler does nothing in the parent,
# so that it survives the signals, and raises KeyboardInterrupt in a forked worker, as the
# inherited default handler would. SIG_IGN there would hide the race, because a worker would
# inherit it. SIGINT is ignored at the end, because the interpreter's shutdown restores the
# default action of a signal with a Python handler, and a signal that came then would end
# the process.
_POOL_LOOP = """
import os, signal, sys, time
from evidence_training.workers import run_chunks

parent = os.getpid()

def on_sigint(signum, frame):
    if os.getpid() != parent:
        signal.default_int_handler(signum, frame)

signal.signal(signal.SIGINT, on_sigint)
print("ready", flush=True)
deadline = time.monotonic() + float(sys.argv[1])
rounds = 0
while time.monotonic() < deadline:
    run_chunks([os.getpid] * 2, sizes=[1, 1], jobs=2, progress=False)
    rounds += 1
signal.signal(signal.SIGINT, signal.SIG_IGN)
print(rounds)
"""


@pytest.mark.timeout(60)
def test_run_chunks_sigint_during_fork() -> None:
    """SIGINT to the group while workers start never reaches a worker's start-up code."""
    process = subprocess.Popen(
        [sys.executable, "-c", _POOL_LOOP, "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    signals = 0
    try:
        # Without the signal mask in run_chunks, a signal every 2 ms hit a worker between its
        # fork and its initializer within the first second, in each of three runs on two cores.
        assert process.stdout is not None
        ready = process.stdout.readline()
        while process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
            except ProcessLookupError:
                break
            signals += 1
            time.sleep(0.002)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert ready == "ready\n", stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert process.returncode == 0, stderr[-3000:]
    assert int(stdout) >= 10, "too few pools started to exercise the race"
    assert signals >= 100, "too few signals sent to exercise the race"


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_chunks_keeps_task_order(jobs: int) -> None:
    """Results come back in task order with one process or with two workers."""
    tasks = [partial(_square, value) for value in range(7)]

    results = run_chunks(tasks, sizes=[1] * 7, jobs=jobs, progress=False)

    assert results == [0, 1, 4, 9, 16, 25, 36]


def test_run_chunks_preload_imports_module() -> None:
    """Modules named in preload are imported in the calling process."""
    sys.modules.pop("colorsys", None)

    run_chunks([partial(_square, 2)], sizes=[1], jobs=2, progress=False, preload=("colorsys",))

    assert "colorsys" in sys.modules


def test_run_chunks_worker_error_propagates() -> None:
    """An exception raised in a worker reaches the caller unchanged."""
    with pytest.raises(ValueError, match="chunk 3 failed"):
        run_chunks([partial(_fail, 3), partial(_square, 1)], sizes=[1, 1], jobs=2, progress=False)


def _kill_own_process(value: int) -> int:
    # SIGKILL cannot be caught, so the worker dies as it would under the out-of-memory killer.
    os.kill(os.getpid(), signal.SIGKILL)
    return value


@pytest.mark.timeout(60)
def test_run_chunks_dead_worker_raises() -> None:
    """A worker killed by SIGKILL raises WorkerError with the cause and the fix."""
    tasks = [partial(_square, 1), partial(_kill_own_process, 2), partial(_square, 3)]

    with pytest.raises(WorkerError) as raised:
        run_chunks(tasks, sizes=[1, 1, 1], jobs=2, progress=False)

    message = str(raised.value)
    assert "one of the 2 worker processes died" in message
    assert "out-of-memory killer" in message
    assert "--jobs" in message


def _child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(text) for text in children.read_text(encoding="ascii").split()]


@pytest.mark.timeout(120)
def test_script_killed_worker_exits_2(tmp_path: Path) -> None:
    """evidence-train exits 2 with one error line when one of its workers gets SIGKILL."""
    command = Path(sys.executable).with_name("evidence-train")
    out = tmp_path / "model"
    # 20,000 pairs keep each worker busy for several seconds, so the kill lands mid-run.
    arguments = ["--synthetic", "20000", "--jobs", "2", "--no-progress", "--out", str(out)]
    process = subprocess.Popen(
        [str(command), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (workers := _child_pids(process.pid)) and process.poll() is None:
            assert time.monotonic() < deadline, "evidence-train started no worker in 60 s"
            time.sleep(0.05)
        assert workers, "evidence-train exited before it started a worker"
        os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: one of the 2 worker processes died"), stderr
    assert "--jobs" in stderr
    assert stdout == ""
    assert not (out / "model.joblib").exists()


def test_load_directory_set_workers_match_single_process(tmp_path: Path) -> None:
    """Workers that read the files themselves build the same matrix as one process."""
    data = tmp_path / "data"
    write_pairs(generate_pairs(30, seed=6), data)

    single = load_directory_set(data, jobs=1, progress=False)
    parallel = load_directory_set(data, jobs=2, progress=False)

    np.testing.assert_array_equal(single.matrix, parallel.matrix)
    assert single.policy_numbers == parallel.policy_numbers


def test_cli_import_skips_heavy_libraries() -> None:
    """Importing the command line loads neither scikit-learn, matplotlib nor pandas."""
    code = (
        "import sys, evidence_training.cli; "
        "print(sorted(m for m in ('sklearn', 'matplotlib', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"


def test_package_lazy_names_resolve() -> None:
    """Every name in evidence_training.__all__ resolves, and an unknown one raises."""
    for name in evidence_training.__all__:
        assert getattr(evidence_training, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = evidence_training.missing
