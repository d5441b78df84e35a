"""The status file in which a gateway's workers share the outcome of their queue appends.

Instances attached in this process stand for workers, and each owns its own slot. Real child
processes stand for workers that crash, because the status file distinguishes live owners from
dead ones by pid. The tests write some bytes of the file directly to corrupt it, so they repeat
its layout: a 64-byte header, then 64-byte slots of owner pid, owner start time, failed
appends, time of the latest failure, pid of the failing worker and exception name, followed by
the CRC-32 of those.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from evidence_gateway.append_status import QueueAppendStatus
from evidence_gateway.append_status_file import (
    AppendStatusFile,
    _read_process_stat,
    append_status_path,
)
from evidence_gateway.config import Settings
from evidence_persistence import QueueFullError, QueueUnavailableError

HEADER_BYTES = 64
SLOT_BYTES = 64
SLOT = struct.Struct("<IQQdI28s")
PAGE_BYTES = 4096


class FakeClock:
    """A monotonic clock that moves only when the test advances it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def status_path(tmp_path: Path) -> Path:
    """The status file of a gateway whose queue is ``tmp_path/queue.sqlite3``."""
    return append_status_path(tmp_path, tmp_path / "queue.sqlite3")


class Workers:
    """Attach statuses to one file, as the workers of a gateway do, and close them all."""

    def __init__(self, path: Path, clock: FakeClock) -> None:
        self.path = path
        self.clock = clock
        self.opened: list[QueueAppendStatus] = []

    def attach(
        self, *, window_seconds: float = 60.0, clock: Callable[[], float] | None = None
    ) -> QueueAppendStatus:
        status = QueueAppendStatus(
            window_seconds=window_seconds,
            clock=clock or self.clock,
            shared_file=AppendStatusFile.attach(self.path, workers=2),
        )
        self.opened.append(status)
        return status

    def close(self) -> None:
        for status in self.opened:
            status.close()
        self.opened.clear()


@pytest.fixture
def workers(status_path: Path) -> Iterator[Workers]:
    """Statuses attached to ``status_path`` with a shared fake clock."""
    opened = Workers(status_path, FakeClock())
    try:
        yield opened
    finally:
        opened.close()


_CHILD = """
import sys, time
from pathlib import Path
from evidence_gateway.append_status import QueueAppendStatus
from evidence_gateway.append_status_file import AppendStatusFile
from evidence_persistence import QueueUnavailableError
status = QueueAppendStatus(shared_file=AppendStatusFile.attach(Path(sys.argv[1]), workers=2))
for _ in range(int(sys.argv[2])):
    status.record_failure(QueueUnavailableError("disk full"))
print("recorded", flush=True)
time.sleep(60)
"""


def _start_failing_worker(path: Path, failures: int) -> subprocess.Popen[str]:
    """Run a worker process that records ``failures`` failed appends and then sleeps."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(failures)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "recorded"
    finally:
        child.stdout.close()
    return child


def _kill_after_failures(path: Path, failures: int) -> int:
    """Run a worker process that records ``failures`` failed appends, then SIGKILL it.

    Returns:
        The pid of the dead worker, whose slot keeps its record.
    """
    child = _start_failing_worker(path, failures)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    return child.pid


def _write_slot(path: Path, slot: int, pid: int, start_ticks: int, failed_at: float) -> None:
    """Write a valid slot with one QueueUnavailableError, as a worker of an earlier run would."""
    payload = SLOT.pack(pid, start_ticks, 1, failed_at, pid, b"QueueUnavailableError")
    with path.open("r+b") as file:
        file.seek(HEADER_BYTES + slot * SLOT_BYTES)
        file.write(payload + struct.pack("<I", zlib.crc32(payload)))


def test_status_path_keyed_by_queue(tmp_path: Path) -> None:
    """Different queues get different files; two paths of one queue get the same file."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")

    first = append_status_path(tmp_path, tmp_path / "real" / "queue.sqlite3")
    second = append_status_path(tmp_path, tmp_path / "real" / "other.sqlite3")
    linked = append_status_path(tmp_path, tmp_path / "link" / "queue.sqlite3")

    assert first != second
    assert first == linked
    assert first.parent == tmp_path


def test_shared_file_none_without_workers() -> None:
    """No shared file, as with one worker: the status covers this process alone."""
    status = QueueAppendStatus(clock=FakeClock())

    status.record_failure(QueueUnavailableError("disk full"))
    failure = status.failure()

    assert failure is not None
    assert failure.pids == (os.getpid(),)
    status.close()


def test_shared_file_one_worker(workers: Workers) -> None:
    """One attached worker behaves as the status without a file."""
    status = workers.attach(window_seconds=30.0)

    assert status.failure() is None
    status.record_failure(QueueUnavailableError("disk full"))
    workers.clock.now += 2.5
    failure = status.failure()
    assert failure is not None
    assert failure.error == "QueueUnavailableError"
    assert failure.failed_appends == 1
    assert failure.age_seconds == 2.5
    assert failure.pids == (os.getpid(),)

    status.record_success()
    assert status.failure() is None


def test_shared_file_preallocated(workers: Workers) -> None:
    """The file is one page of written bytes, not a sparse file whose pages a write allocates."""
    workers.attach()

    stat = workers.path.stat()

    assert stat.st_size == PAGE_BYTES
    assert stat.st_blocks * 512 >= PAGE_BYTES
    assert stat.st_mode & 0o777 == 0o600


def test_shared_file_many_workers(workers: Workers) -> None:
    """Every worker reports the failures of all: latest error, summed count, latest age."""
    first, second, third = workers.attach(), workers.attach(), workers.attach()

    first.record_failure(QueueUnavailableError("disk full"))
    first.record_failure(QueueUnavailableError("disk full"))
    workers.clock.now += 3.0
    second.record_failure(QueueFullError("full", depth=10, max_depth=10))
    workers.clock.now += 1.0
    failures = [status.failure() for status in (first, second, third)]

    for failure in failures:
        assert failure is not None
        assert failure.error == "QueueFullError"
        assert failure.failed_appends == 3
        assert failure.age_seconds == 1.0


def test_shared_file_success_clears_own(workers: Workers) -> None:
    """A worker's success clears its own failure, not the failure of another worker."""
    failing, healthy, probe = workers.attach(), workers.attach(), workers.attach()
    failing.record_failure(QueueUnavailableError("disk full"))

    healthy.record_success()
    still = probe.failure()
    failing.record_success()
    cleared = probe.failure()

    assert still is not None
    assert still.error == "QueueUnavailableError"
    assert cleared is None


def test_shared_file_window_expires(workers: Workers) -> None:
    """Another worker's failure counts until the window has passed, and then no longer."""
    failing = workers.attach(window_seconds=30.0)
    probe = workers.attach(window_seconds=30.0)
    failing.record_failure(QueueUnavailableError("disk full"))

    workers.clock.now += 29.999
    assert probe.failure() is not None
    workers.clock.now += 0.001
    assert probe.failure() is None


def test_shared_file_future_failure_ignored(workers: Workers) -> None:
    """A failure time ahead of the reader's clock comes from another clock and is ignored."""
    failing = workers.attach()
    probe = QueueAppendStatus(
        clock=FakeClock(now=workers.clock.now - 10.0),
        shared_file=AppendStatusFile.attach(workers.path, workers=2),
    )
    workers.opened.append(probe)

    failing.record_failure(QueueUnavailableError("disk full"))

    assert probe.failure() is None


def test_shared_file_slot_per_worker(workers: Workers) -> None:
    """Each attached worker writes a slot of its own, so none overwrites another's count."""
    statuses = [workers.attach() for _ in range(5)]

    for count, status in enumerate(statuses, start=1):
        for _ in range(count):
            status.record_failure(QueueUnavailableError("disk full"))
    failure = statuses[0].failure()

    assert failure is not None
    assert failure.failed_appends == 1 + 2 + 3 + 4 + 5


def test_shared_file_all_slots_taken(workers: Workers) -> None:
    """With every slot owned by a live worker, attaching raises an OSError that names the cause."""
    for _ in range(63):
        workers.attach()

    with pytest.raises(OSError, match="all 63 slots of the append status file have live owners"):
        AppendStatusFile.attach(workers.path, workers=2)


def test_shared_file_slots_scale_with_workers(status_path: Path) -> None:
    """More than 31 workers get two slots each, past one page."""
    shared_file = AppendStatusFile.attach(status_path, workers=40)
    try:
        assert status_path.stat().st_size == HEADER_BYTES + 80 * SLOT_BYTES
    finally:
        shared_file.close()


def test_shared_file_deleted_by_last_worker(workers: Workers) -> None:
    """The file stays while a worker is attached and is deleted when the last one closes."""
    first, second = workers.attach(), workers.attach()

    first.close()
    kept = workers.path.exists()
    second.close()

    assert kept
    assert not workers.path.exists()


def test_shared_file_crashed_worker_counts_for_window(workers: Workers) -> None:
    """A worker killed after a failure: the others count it until the window ends."""
    # The child records with the real monotonic clock, so the probe reads with it too.
    probe = workers.attach(window_seconds=1.5, clock=time.monotonic)

    dead_pid = _kill_after_failures(workers.path, failures=2)
    during = probe.failure()
    assert during is not None
    time.sleep(1.5 - during.age_seconds + 0.05)
    after = probe.failure()

    assert during.error == "QueueUnavailableError"
    assert during.failed_appends == 2
    assert during.pids == (dead_pid,)
    assert after is None


def test_shared_file_restarted_worker_inherits(workers: Workers) -> None:
    """A worker that must take a crashed worker's slot keeps counting its failure."""
    for _ in range(62):
        workers.attach(clock=time.monotonic)
    dead_pid = _kill_after_failures(workers.path, failures=3)

    restarted = workers.attach(clock=time.monotonic)
    own = restarted.failure()
    other = workers.opened[0].failure()
    restarted.record_success()
    cleared = workers.opened[0].failure()

    assert own is not None
    assert own.failed_appends == 3
    assert own.pids == (dead_pid,)
    assert other is not None
    assert other.failed_appends == 3
    assert other.pids == (dead_pid,)
    assert cleared is None


def test_shared_file_stale_run_ignored(workers: Workers) -> None:
    """A failure left by a run whose workers all died does not count in a fresh start."""
    _kill_after_failures(workers.path, failures=1)
    assert workers.path.exists()

    # The child recorded with the real monotonic clock, so the fresh worker reads with it too.
    fresh = workers.attach(clock=time.monotonic)

    assert fresh.failure() is None


def test_shared_file_zombie_owner_dead(workers: Workers) -> None:
    """A killed worker that its parent has not collected yet counts as dead."""
    child = _start_failing_worker(workers.path, failures=1)
    try:
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while b") Z " not in Path(f"/proc/{child.pid}/stat").read_bytes():
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)

        fresh = workers.attach(clock=time.monotonic)
        failure = fresh.failure()
    finally:
        child.kill()
        child.wait(timeout=10)

    assert failure is None


@pytest.mark.parametrize("same_start", [True, False], ids=["same-process", "reused-pid"])
def test_shared_file_owner_start_time(workers: Workers, same_start: bool) -> None:
    """A slot whose pid runs counts as live only if that process started when the owner did."""
    _kill_after_failures(workers.path, failures=1)
    parent = os.getppid()
    process = _read_process_stat(parent)
    assert process is not None
    start_ticks = process[1]
    recorded_ticks = start_ticks if same_start else start_ticks + 1
    _write_slot(workers.path, 0, pid=parent, start_ticks=recorded_ticks, failed_at=1000.0)

    failure = workers.attach().failure()

    if same_start:
        assert failure is not None
        assert failure.pids == (parent,)
    else:
        assert failure is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"short",
        b"\xff" * PAGE_BYTES,
        b"EVGWAPND" + b"\0" * 8,
        struct.pack("<8sHHI", b"EVGWAPND", 1, SLOT_BYTES, 63).ljust(1000, b"\0"),
    ],
    ids=["empty", "short", "garbage", "short-header", "short-slots"],
)
def test_shared_file_invalid_rewritten(workers: Workers, content: bytes) -> None:
    """An empty, short or invalid file is rewritten, and the workers then share it."""
    workers.path.write_bytes(content)

    first, second = workers.attach(), workers.attach()
    first.record_failure(QueueUnavailableError("disk full"))
    failure = second.failure()

    assert workers.path.stat().st_size == PAGE_BYTES
    assert failure is not None
    assert failure.error == "QueueUnavailableError"


def test_shared_file_corrupt_slot_ignored(workers: Workers) -> None:
    """A slot that fails its CRC check is logged once and skipped until it is valid again."""
    failing, probe = workers.attach(), workers.attach()
    failing.record_failure(QueueUnavailableError("disk full"))
    with workers.path.open("r+b") as file:
        file.seek(HEADER_BYTES + 20)
        file.write(b"\x7f")

    with structlog.testing.capture_logs() as logs:
        first = probe.failure()
        second = probe.failure()
    failing.record_failure(QueueUnavailableError("disk full"))
    repaired = probe.failure()

    assert first is None
    assert second is None
    assert [entry["event"] for entry in logs] == ["append status slot is corrupt and is ignored"]
    assert logs[0]["slot"] == 0
    assert repaired is not None
    assert repaired.failed_appends == 2


def test_shared_file_truncated_while_attached(workers: Workers) -> None:
    """A file truncated under the workers reads as empty slots, and the next write restores one."""
    failing, probe = workers.attach(), workers.attach()
    failing.record_failure(QueueUnavailableError("disk full"))

    os.truncate(workers.path, 10)
    truncated = probe.failure()
    failing.record_failure(QueueUnavailableError("disk full"))
    rewritten = probe.failure()

    assert truncated is None
    assert rewritten is not None
    assert rewritten.failed_appends == 2


def _open_status_files() -> list[str]:
    """Return the targets of this process's descriptors that are status files, deleted or not."""
    targets = []
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            targets.append(str(entry.readlink()))
    return [target for target in targets if "evidence-gateway-append-status-" in target]


def test_shared_file_in_place_kept(workers: Workers) -> None:
    """Probes while the path still names the file keep it: no new descriptor, no log line."""
    first, second = workers.attach(), workers.attach()
    first.record_failure(QueueUnavailableError("disk full"))
    descriptors = _open_status_files()

    with structlog.testing.capture_logs() as logs:
        failures = [status.failure() for status in (first, second, first, second)]

    assert _open_status_files() == descriptors
    assert logs == []
    for failure in failures:
        assert failure is not None
        assert failure.failed_appends == 1


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_shared_file_moved_reattaches(workers: Workers, change: str) -> None:
    """A deleted or replaced file: each worker attaches to the path's file at its next probe."""
    failing, healthy = workers.attach(), workers.attach()
    failing.record_failure(QueueUnavailableError("disk full"))
    failing.record_failure(QueueUnavailableError("disk full"))
    workers.path.unlink()
    if change == "replaced":
        workers.path.write_bytes(b"")

    with structlog.testing.capture_logs() as logs:
        healthy_alone = healthy.failure()
        failing_own = failing.failure()
        healthy_after = healthy.failure()
    restarted = workers.attach()
    restarted_view = restarted.failure()

    # The healthy worker attached first, to a file without the failure.
    assert healthy_alone is None
    assert failing_own is not None
    assert failing_own.failed_appends == 2
    for failure in (healthy_after, restarted_view):
        assert failure is not None
        assert failure.failed_appends == 2
        assert failure.pids == (os.getpid(),)
    events = [entry["event"] for entry in logs]
    assert len(events) == 2
    assert all(event.startswith("append status file was deleted or replaced;") for event in events)
    assert len(_open_status_files()) == 3
    assert not any(target.endswith("(deleted)") for target in _open_status_files())
    assert sorted(_slot_pids(workers.path))[-3:] == [os.getpid()] * 3


def test_shared_file_deleted_failure_reattaches(workers: Workers) -> None:
    """A failure recorded after the file was deleted goes to the new file, without a probe."""
    failing, other = workers.attach(), workers.attach()
    workers.path.unlink()

    failing.record_failure(QueueUnavailableError("disk full"))
    restarted = workers.attach()
    seen = restarted.failure()
    stale = other.failure()

    assert workers.path.exists()
    assert seen is not None
    assert seen.failed_appends == 1
    # The other worker attaches at this probe and then reads the new file.
    assert stale is not None
    assert stale.failed_appends == 1


def test_shared_file_reattach_failure_logged_once(workers: Workers) -> None:
    """The path taken by a directory: one error line, the old file kept, then recovery."""
    first, second = workers.attach(), workers.attach()
    first.record_failure(QueueUnavailableError("disk full"))
    workers.path.unlink()
    workers.path.mkdir()

    with structlog.testing.capture_logs() as logs:
        blocked = [second.failure() for _ in range(3)]
        workers.path.rmdir()
        recovered = second.failure()

    for failure in blocked:
        assert failure is not None
        assert failure.failed_appends == 1
    assert recovered is None
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["exception_type"] == "IsADirectoryError"
    assert errors[0]["path"] == str(workers.path)
    assert [entry["log_level"] for entry in logs] == ["error", "warning"]


def test_settings_need_status_dir_for_workers(tmp_path: Path) -> None:
    """Several workers need an existing, writable status directory; one worker uses none."""
    missing = tmp_path / "missing"
    regular_file = tmp_path / "file"
    regular_file.write_bytes(b"")

    def build(workers: int, append_status_dir: Path) -> Settings:
        return Settings(
            workers=workers,
            append_status_dir=append_status_dir,
            local_mode=True,
            prometheus_multiproc_dir=tmp_path,
        )

    with pytest.raises(ValueError, match=re.escape(f"GATEWAY_APPEND_STATUS_DIR={missing} is not")):
        build(2, missing)
    with pytest.raises(ValueError, match=re.escape(f"={regular_file} is not a directory")):
        build(2, regular_file)
    # /proc accepts no new file, even from root, although os.access reports it writable for root.
    with pytest.raises(ValueError, match=re.escape("=/proc is not writable (FileNotFoundError")):
        build(2, Path("/proc"))
    assert build(1, missing).workers == 1
    assert build(1, Path("/proc")).workers == 1
    assert build(2, tmp_path).workers == 2
    # The write check leaves no file behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


def _slot_pids(path: Path) -> list[int]:
    """Return the owner pid of every slot, 0 for an empty one, without checking the CRC."""
    data = path.read_bytes()
    count = (len(data) - HEADER_BYTES) // SLOT_BYTES
    return [
        struct.unpack_from("<I", data, HEADER_BYTES + index * SLOT_BYTES)[0]
        for index in range(count)
    ]


def _flip_error_byte(path: Path, slot: int) -> None:
    """Change one byte of a slot's exception name, so its CRC check fails from now on."""
    with path.open("r+b") as file:
        file.seek(HEADER_BYTES + slot * SLOT_BYTES + 40)
        byte = file.read(1)
        file.seek(HEADER_BYTES + slot * SLOT_BYTES + 40)
        file.write(bytes([byte[0] ^ 0xFF]))


def test_attach_rereads_slot_caught_halfway(
    workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live worker's slot read halfway through its write is read again, never taken."""
    child = _start_failing_worker(workers.path, failures=1)
    try:
        real_pread = os.pread
        reads: list[int] = []

        def torn_pread(fd: int, length: int, offset: int) -> bytes:
            # The first full read catches the child's slot 0 halfway: its CRC fails.
            data = real_pread(fd, length, offset)
            reads.append(length)
            if len(reads) == 1 and length >= HEADER_BYTES + SLOT_BYTES:
                start = HEADER_BYTES + 40
                data = data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1 :]
            return data

        monkeypatch.setattr(os, "pread", torn_pread)
        attached = workers.attach(clock=time.monotonic)
        monkeypatch.undo()
        pids = _slot_pids(workers.path)
        failure = attached.failure()
    finally:
        child.kill()
        child.wait(timeout=10)

    assert len(reads) >= 2
    assert pids[0] == child.pid
    assert pids[1] == os.getpid()
    assert failure is not None
    assert failure.pids == (child.pid,)


def test_attach_skips_corrupt_slot_of_live_owner(workers: Workers) -> None:
    """A slot that stays corrupt but names a live owner counts as taken."""
    for _ in range(62):
        workers.attach()
    child = _start_failing_worker(workers.path, failures=1)
    try:
        _flip_error_byte(workers.path, 62)

        with pytest.raises(OSError, match="all 63 slots of the append status file"):
            AppendStatusFile.attach(workers.path, workers=2)
    finally:
        child.kill()
        child.wait(timeout=10)


def test_attach_reclaims_corrupt_slot_of_dead_owner(workers: Workers) -> None:
    """A slot that stays corrupt and names a dead owner is reused, without its record."""
    for _ in range(62):
        workers.attach(clock=time.monotonic)
    _kill_after_failures(workers.path, failures=3)
    _flip_error_byte(workers.path, 62)

    with structlog.testing.capture_logs() as logs:
        reclaimed = workers.attach(clock=time.monotonic)
    own = reclaimed.failure()

    assert _slot_pids(workers.path)[62] == os.getpid()
    assert own is None
    assert [entry["slot"] for entry in logs] == [62]


def test_attach_reclaims_corrupt_slot_with_garbage_pid(workers: Workers) -> None:
    """A corrupt slot whose pid bytes are out of range counts as having a dead owner."""
    for _ in range(62):
        workers.attach()
    with workers.path.open("r+b") as file:
        file.seek(HEADER_BYTES + 62 * SLOT_BYTES)
        file.write(b"\xff" * SLOT_BYTES)

    workers.attach()

    assert _slot_pids(workers.path)[62] == os.getpid()


def test_close_keeps_file_for_corrupt_live_slot(workers: Workers) -> None:
    """The last in-process worker keeps the file while a live worker's slot reads as corrupt."""
    attached = workers.attach()
    child = _start_failing_worker(workers.path, failures=1)
    try:
        _flip_error_byte(workers.path, 1)
        attached.close()
        kept = workers.path.exists()
    finally:
        child.kill()
        child.wait(timeout=10)

    assert kept


_CLOSING_CHILD = """
import sys
from pathlib import Path
from evidence_gateway.append_status import QueueAppendStatus
from evidence_gateway.append_status_file import AppendStatusFile
status = QueueAppendStatus(shared_file=AppendStatusFile.attach(Path(sys.argv[1]), workers=2))
print("attached", flush=True)
sys.stdin.readline()
status.close()
print("closed", flush=True)
"""


def test_shared_file_deleted_when_closer_still_runs(workers: Workers) -> None:
    """The last worker to close deletes the file while an earlier closer has not exited yet.

    Workers of one gateway stop together, so each may close while the others still run.
    """
    first = workers.attach()
    child = subprocess.Popen(
        [sys.executable, "-c", _CLOSING_CHILD, str(workers.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "attached"
        first.close()
        kept = workers.path.exists()
        child.stdin.write("close\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
    finally:
        child.stdin.close()
        child.stdout.close()
        child.wait(timeout=10)

    assert kept
    assert not workers.path.exists()


def test_shared_file_closed_worker_counts_for_window(workers: Workers) -> None:
    """A worker that closed after a failure: the others count it until the window ends."""
    probe = workers.attach()
    closing = workers.attach()
    closing.record_failure(QueueUnavailableError("disk full"))

    closing.close()
    failure = probe.failure()

    assert failure is not None
    assert failure.failed_appends == 1
    assert failure.error == "QueueUnavailableError"
    assert failure.pids == (os.getpid(),)
