"""A small file in which the uvicorn workers of one gateway share their queue append outcomes.

With ``GATEWAY_WORKERS`` above 1 a readiness probe reaches one worker, so each worker must see
the append failures of the others. Each worker owns one fixed-size slot of the file, writes
only that slot, and reads every other slot when a probe runs.

Why a file in ``/dev/shm`` (POSIX shared memory on Linux) written with ``os.pwrite``:

- Appends fail when the queue's disk is full or its file is read-only or locked. ``/dev/shm``
  is a memory file system apart from that disk, and the file is created with real zero bytes
  (not ``ftruncate`` alone, which leaves holes), so a later write in place needs no new page.
- ``pwrite`` and ``pread`` return an ``OSError`` where a store through ``mmap`` would kill the
  worker with SIGBUS, such as when the file was truncated under it.
  ``multiprocessing.shared_memory`` is not used because on Python 3.11 its resource tracker
  unlinks the segment when the first process that opened it exits.
- Readers take no lock. Each slot carries a CRC-32, and a read that catches a write halfway
  fails the check and is repeated. A short ``lockf`` lock is taken only when a worker attaches
  or detaches.

A slot records its owner's pid and start time, so a worker that attaches can tell live owners
from dead ones, even when the kernel has given a dead owner's pid to another process. When no
owner is alive the file belongs to an earlier run, and the first worker rewrites it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

__all__ = ["AppendStatusFile", "SlotRecord", "append_status_path"]

_log = structlog.get_logger("evidence_gateway.append_status_file")

_MAGIC = b"EVGWAPND"
_VERSION = 1
# Magic, version, slot size and slot count, padded to one slot.
_HEADER = struct.Struct("<8sHHI")
# Owner pid, owner start time (clock ticks after boot, 0 when unknown), failed appends since the
# last success, clock value of the latest failure, pid of the worker that recorded that failure,
# exception name, then the CRC-32 of these. The failing pid differs from the owner's when the
# owner took over the slot of a worker that exited.
_SLOT = struct.Struct("<IQQdI28s")
_ERROR_BYTES = 28
_CRC = struct.Struct("<I")
_SLOT_BYTES = 64
_HEADER_BYTES = _SLOT_BYTES
# One 4 KiB page contains the header and 63 slots.
_MIN_SLOTS = 63
# lockf locks the byte just past this offset, far beyond the end of any status file, so the
# lock never covers data that readers read without a lock.
_SETUP_LOCK_OFFSET = 1 << 30
# Reads that catch a write halfway are repeated this often before the slot counts as corrupt.
_READ_ATTEMPTS = 3
# Attempts to open a file that the last worker of an earlier run unlinks at the same time.
_OPEN_ATTEMPTS = 5

# Slots that status files of this process own, by file (st_dev, st_ino) and slot index. A slot
# whose pid is this process is alive only when it is listed here.
_OWNED_SLOTS: set[tuple[int, int, int]] = set()


@dataclass(frozen=True, slots=True)
class SlotRecord:
    """One worker's slot: its owner and the append failures recorded since the last success."""

    pid: int
    start_ticks: int
    failed_appends: int
    failed_at: float
    failed_pid: int
    error: str


def append_status_path(directory: Path, queue_path: Path) -> Path:
    """Return the status file of the gateway whose queue is ``queue_path``.

    The name contains a digest of the queue's resolved path, so gateways with different queues
    on one machine use different files, and gateways that share a queue share one file.
    """
    digest = hashlib.sha256(os.fsencode(queue_path.resolve())).hexdigest()[:16]
    return directory / f"evidence-gateway-append-status-{digest}"


class AppendStatusFile:
    """This process's slot in a gateway's status file, and read access to the other slots.

    Use ``attach`` to open one. All methods raise ``OSError`` when the file cannot be read or
    written.

    Attributes:
        path: The status file.
        workers: ``GATEWAY_WORKERS``, to attach again with ``attach(path, workers=workers)``.
        inherited: The failure record of the slot's earlier owner, a worker of this gateway
            that exited, or None. The new owner keeps counting it so the failure stays visible
            for the rest of its window.
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        slot_count: int,
        slot: int,
        inherited: SlotRecord | None,
        *,
        workers: int,
    ) -> None:
        self.path = path
        self.workers = workers
        self.inherited = inherited
        self._fd = fd
        self._slot_count = slot_count
        self._slot = slot
        self._size = _file_size(slot_count)
        self._pid = os.getpid()
        own_process = _read_process_stat(self._pid)
        self._start_ticks = own_process[1] if own_process is not None else 0
        stat = os.fstat(fd)
        self._key = (stat.st_dev, stat.st_ino, slot)
        self._corrupt_slots: set[int] = set()
        _OWNED_SLOTS.add(self._key)

    @classmethod
    def attach(cls, path: Path, *, workers: int) -> AppendStatusFile:
        """Open or create the status file at ``path`` and take a free slot in it.

        The file is rewritten when no slot has a live owner, or when it is short or invalid,
        so the failures of an earlier run do not count in a new one.

        Args:
            path: The file, usually from ``append_status_path``.
            workers: ``GATEWAY_WORKERS``; a new file has twice as many slots, and at least 63.

        Raises:
            OSError: The file cannot be created, locked, read or written, or every slot has a
                live owner.
        """
        fd = _open_linked(path)
        status: AppendStatusFile | None = None
        try:
            with _setup_lock(fd):
                slot_count, slot, inherited = _claim_slot(fd, max(_MIN_SLOTS, 2 * workers))
                status = cls(path, fd, slot_count, slot, inherited, workers=workers)
                if inherited is None:
                    status.write_own()
                else:
                    status.write_own(
                        error=inherited.error,
                        failed_appends=inherited.failed_appends,
                        failed_at=inherited.failed_at,
                        failed_pid=inherited.failed_pid,
                    )
        except BaseException:
            if status is not None:
                _OWNED_SLOTS.discard(status._key)
            os.close(fd)
            raise
        return status

    def write_own(
        self,
        *,
        error: str = "",
        failed_appends: int = 0,
        failed_at: float = 0.0,
        failed_pid: int = 0,
    ) -> None:
        """Write this process's slot: the failed appends since the last success and the latest one.

        Args:
            error: Exception name of the latest failure, cut to 28 bytes; empty without one.
            failed_appends: Failed appends since the last success; 0 clears the slot.
            failed_at: Clock value of the latest failure.
            failed_pid: The worker that recorded the latest failure.
        """
        owner = SlotRecord(
            self._pid, self._start_ticks, failed_appends, failed_at, failed_pid, error
        )
        _write_all(self._fd, _slot_bytes(owner), _HEADER_BYTES + self._slot * _SLOT_BYTES)

    def read_others(self) -> list[SlotRecord]:
        """Read the slots of the other workers that recorded a failure, old ones included.

        A slot that fails its CRC check in every attempt is skipped and logged once.
        """
        _, records, corrupt = _read_slots(self._fd, self._size, self._slot_count)
        for index in sorted(corrupt - self._corrupt_slots):
            _log.warning("append status slot is corrupt and is ignored", slot=index)
        self._corrupt_slots = corrupt
        return [
            record
            for index, record in enumerate(records)
            if index != self._slot and record is not None and record.failed_appends > 0
        ]

    def is_at_path(self) -> bool:
        """Return whether ``path`` still names this file, with one ``stat`` call.

        False when the file was deleted, such as by systemd's ``RemoveIPC=yes`` when the user's
        last session ends, or when another file took its name. Workers that attach later use
        the file at the path, so this worker must attach again to be seen by them.

        Raises:
            OSError: The path cannot be checked, for a reason other than a missing file.
        """
        try:
            current = self.path.lstat()
        except FileNotFoundError:
            return False
        return (current.st_dev, current.st_ino) == self._key[:2]

    def abandon(self) -> None:
        """Give up this process's slot and close the file without deleting anything.

        For a file that ``is_at_path`` reports as deleted or replaced, after attaching to the
        file at the path, so that the path's new file stays in place.
        """
        _OWNED_SLOTS.discard(self._key)
        os.close(self._fd)

    def close(self) -> None:
        """Give up this process's slot, and delete the file when no other owner is alive.

        The slot keeps its failure record, so the other workers count it until its window
        ends. Only the last worker of a gateway deletes the file.
        """
        _OWNED_SLOTS.discard(self._key)
        try:
            with _setup_lock(self._fd):
                # Workers of one gateway close at the same time. Each one that found the
                # others still running would leave the file behind, so a closed slot names
                # no owner from here on, as a dead worker's slot does.
                self._release_slot()
                if not _live_slots(self._fd, self._size, self._slot_count):
                    _unlink_if_same(self.path, self._fd)
        finally:
            os.close(self._fd)

    def _release_slot(self) -> None:
        """Clear the owner of this process's slot and keep its failure record."""
        _, records, _ = _read_slots(self._fd, self._size, self._slot_count)
        record = records[self._slot]
        offset = _HEADER_BYTES + self._slot * _SLOT_BYTES
        if record is None or record.failed_appends == 0:
            _write_all(self._fd, bytes(_SLOT_BYTES), offset)
            return
        released = replace(record, pid=0, start_ticks=0)
        _write_all(self._fd, _slot_bytes(released), offset)


def _slot_bytes(record: SlotRecord) -> bytes:
    """Return one slot as stored: the packed record, then its CRC."""
    payload = _SLOT.pack(
        record.pid,
        record.start_ticks,
        record.failed_appends,
        record.failed_at,
        record.failed_pid,
        record.error.encode("utf-8")[:_ERROR_BYTES],
    )
    return payload + _CRC.pack(zlib.crc32(payload))


def _file_size(slot_count: int) -> int:
    return _HEADER_BYTES + slot_count * _SLOT_BYTES


def _open_linked(path: Path) -> int:
    """Open ``path``, creating it, and return a descriptor of a file that is still linked.

    The last worker of an earlier run may unlink the file between this open and the setup lock,
    so a descriptor of an unlinked file is closed and the open repeated.
    """
    for _ in range(_OPEN_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        with _setup_lock(fd):
            linked = os.fstat(fd).st_nlink > 0
        if linked:
            return fd
        os.close(fd)
    msg = f"the append status file {path} was deleted {_OPEN_ATTEMPTS} times while it was opened"
    raise OSError(errno.EAGAIN, msg)


@contextlib.contextmanager
def _setup_lock(fd: int) -> Iterator[None]:
    """Hold the file's setup lock, which serializes attaching and detaching workers.

    ``lockf`` locks belong to the process, and the kernel drops them when it exits.
    """
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, _SETUP_LOCK_OFFSET, os.SEEK_SET)
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SETUP_LOCK_OFFSET, os.SEEK_SET)


def _claim_slot(fd: int, new_slot_count: int) -> tuple[int, int, SlotRecord | None]:
    """Pick a slot without a live owner; call with the setup lock held.

    Returns:
        The file's slot count, the slot and the failure record it inherits.
    """
    data = os.pread(fd, os.fstat(fd).st_size, 0)
    slot_count = _read_header(data)
    records: list[SlotRecord | None] = []
    corrupt: set[int] = set()
    live: set[int] = set()
    if slot_count is not None:
        data, records, corrupt = _read_slots(fd, len(data), slot_count)
        live = _live_owners(data, records, corrupt, fd)
    if slot_count is None or not live:
        if data and slot_count is None:
            _log.warning("append status file was invalid and was rewritten", error="bad header")
        slot_count = new_slot_count
        _write_fresh(fd, slot_count)
        return slot_count, 0, None

    # Empty slots first, then slots whose dead owner recorded no failure or a corrupt record,
    # then the one whose failure is oldest, so that a failure still inside its window is
    # inherited only when no other slot is free. A corrupt record is never inherited.
    candidates = [index for index in range(slot_count) if index not in live]
    if not candidates:
        msg = (
            f"all {slot_count} slots of the append status file have live owners; stop the "
            "other gateway processes that use the same GATEWAY_QUEUE_PATH"
        )
        raise OSError(errno.EBUSY, msg)

    def preference(index: int) -> tuple[int, float]:
        record = records[index]
        if index in corrupt:
            return (1, 0.0)
        if record is None:
            return (0, 0.0)
        if record.failed_appends == 0:
            return (1, 0.0)
        return (2, record.failed_at)

    slot = min(candidates, key=preference)
    record = records[slot]
    if slot in corrupt:
        _log.warning("append status slot is corrupt and its dead owner's slot is reused", slot=slot)
    inherited = record if record is not None and record.failed_appends > 0 else None
    return slot_count, slot, inherited


def _write_fresh(fd: int, slot_count: int) -> None:
    """Rewrite the file as a header and zeroed slots, every byte written so none is a hole."""
    # NOTE: copy-on-write file systems (btrfs, ZFS) allocate a new block for every write, so
    # there a later slot write can still fail with ENOSPC when the disk is full.
    size = _file_size(slot_count)
    header = _HEADER.pack(_MAGIC, _VERSION, _SLOT_BYTES, slot_count).ljust(_HEADER_BYTES, b"\0")
    os.ftruncate(fd, size)
    _write_all(fd, header + bytes(size - _HEADER_BYTES), 0)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _read_header(data: bytes) -> int | None:
    """Return the slot count of a valid header, or None for a short or invalid file."""
    if len(data) < _HEADER_BYTES:
        return None
    magic, version, slot_bytes, slot_count = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION or slot_bytes != _SLOT_BYTES or slot_count < 1:
        return None
    if len(data) < _file_size(slot_count):
        return None
    return int(slot_count)


def _read_slots(
    fd: int, size: int, slot_count: int
) -> tuple[bytes, list[SlotRecord | None], set[int]]:
    """Read and parse the slots, reading again while one fails its CRC check.

    A worker writes its own slot without a lock, so a read can catch that write halfway. A
    slot that is still corrupt after ``_READ_ATTEMPTS`` reads is listed as corrupt.

    Returns:
        The bytes read last, the parsed slots (None for an empty or corrupt one) and the
        indexes of the corrupt ones.
    """
    data = b""
    records: list[SlotRecord | None] = []
    corrupt: set[int] = set()
    for _ in range(_READ_ATTEMPTS):
        data = os.pread(fd, size, 0)
        records, corrupt = _parse_slots(data, slot_count)
        if not corrupt:
            break
    return data, records, corrupt


def _live_owners(
    data: bytes, records: list[SlotRecord | None], corrupt: set[int], fd: int
) -> set[int]:
    """Return the indexes of the slots whose owner is alive, corrupt slots included.

    The owner's pid and start time of a corrupt slot are read without the CRC check. A worker
    rewrites only its own slot and never changes those two fields, so a write caught halfway
    still shows the live owner. A slot corrupted in some other way usually shows a pid that
    does not run, or one with another start time, so it counts as free under the same rules as
    the slot of a worker that exited.
    """
    live: set[int] = set()
    for index, record in enumerate(records):
        owner = _corrupt_slot_owner(data, index) if index in corrupt else record
        if owner is not None and _owner_alive(owner, fd, index):
            live.add(index)
    return live


def _live_slots(fd: int, size: int, slot_count: int) -> set[int]:
    """Read the file and return the indexes of the slots whose owner is alive."""
    data, records, corrupt = _read_slots(fd, size, slot_count)
    return _live_owners(data, records, corrupt, fd)


def _corrupt_slot_owner(data: bytes, index: int) -> SlotRecord:
    """Return the owner fields of a slot that failed its CRC check, with no failure record."""
    pid, start_ticks = struct.unpack_from("<IQ", data, _HEADER_BYTES + index * _SLOT_BYTES)
    return SlotRecord(
        pid=pid, start_ticks=start_ticks, failed_appends=0, failed_at=0.0, failed_pid=0, error=""
    )


def _parse_slots(data: bytes, slot_count: int) -> tuple[list[SlotRecord | None], set[int]]:
    """Parse every slot of ``data``: None for an empty one, also listing those that are corrupt.

    Slots beyond the end of a short ``data`` count as empty.
    """
    records: list[SlotRecord | None] = []
    corrupt: set[int] = set()
    empty = bytes(_SLOT_BYTES)
    for index in range(slot_count):
        start = _HEADER_BYTES + index * _SLOT_BYTES
        chunk = data[start : start + _SLOT_BYTES]
        if len(chunk) < _SLOT_BYTES or chunk == empty:
            records.append(None)
            continue
        (crc,) = _CRC.unpack_from(chunk, _SLOT.size)
        if zlib.crc32(chunk[: _SLOT.size]) != crc:
            records.append(None)
            corrupt.add(index)
            continue
        pid, start_ticks, failed_appends, failed_at, failed_pid, error = _SLOT.unpack_from(chunk)
        records.append(
            SlotRecord(
                pid=pid,
                start_ticks=start_ticks,
                failed_appends=failed_appends,
                failed_at=failed_at,
                failed_pid=failed_pid,
                error=error.rstrip(b"\0").decode("utf-8", errors="replace"),
            )
        )
    return records, corrupt


def _owner_alive(record: SlotRecord, fd: int, index: int) -> bool:
    """Return whether the process that owns a slot still runs and still owns it."""
    if record.pid == 0:
        return False
    if record.pid == os.getpid():
        stat = os.fstat(fd)
        return (stat.st_dev, stat.st_ino, index) in _OWNED_SLOTS
    try:
        os.kill(record.pid, 0)
    except (ProcessLookupError, OverflowError):
        # A corrupt slot can carry a pid beyond the range of pid_t.
        return False
    except PermissionError:
        pass
    process = _read_process_stat(record.pid)
    if process is None:
        return True
    state, start_ticks = process
    # A zombie has exited and waits for its parent to collect it. A different start time means
    # the kernel gave the dead owner's pid to a new process.
    if state == b"Z":
        return False
    return record.start_ticks in (0, start_ticks)


def _read_process_stat(pid: int) -> tuple[bytes, int] | None:
    """Return the state and the start time (clock ticks after boot) of ``pid``.

    Returns None where Linux's ``/proc`` does not show the process.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name in brackets may contain spaces, so fields are counted after it. State
    # and start time are fields 3 and 22 of proc_pid_stat(5), the 1st and 20th after the name.
    fields = stat.rsplit(b")", 1)[-1].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _unlink_if_same(path: Path, fd: int) -> None:
    """Delete ``path`` unless it now names another file than ``fd``."""
    opened = os.fstat(fd)
    try:
        current = path.stat()
    except FileNotFoundError:
        return
    if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
        path.unlink(missing_ok=True)
