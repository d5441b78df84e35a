"""One SQLite file shared by several processes: connection per process, pragmas, retried writes.

SQLite allows one writer at a time even in WAL mode. A deferred transaction that reads first and
writes later can fail with SQLITE_BUSY at once, without waiting, when another connection committed
in between. Every transaction here that may write therefore starts with ``BEGIN IMMEDIATE``, or is
a single statement, and both take the write lock before they read anything.

Waiting for the lock is done here, not by SQLite's busy handler. That handler sleeps 1, 2, 5 and
then 10 ms or more between tries (``sqliteDefaultBusyCallback`` in SQLite's ``main.c``), so a
writer that collides with a lock held for 0.2 ms waits at least 1 ms. Connections are opened with
a busy timeout of 0, and a statement that finds the lock held is tried again after 50 µs, doubling
up to 1 ms, until ``busy_timeout_ms`` has passed. Lock errors that outlast that are retried with
exponential back-off. The transaction is rolled back before each retry, so a retry never applies a
write twice. A caller of ``write`` may pass ``on_failed_attempt`` to receive each attempt that
failed with a lock or I/O error, because the retries can otherwise take seconds without a trace.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from evidence_persistence._sqlite_attempts import FailedAttempt, ReportingAttempt
from evidence_persistence._sqlite_errors import (
    is_binding_error,
    is_corruption_error,
    is_lock_error,
    is_schema_error,
)
from evidence_persistence._sqlite_sidecars import (
    FileId,
    FileIds,
    ReopenHazard,
    read_file_ids,
    sidecar_hazard,
    sidecar_moved,
    stale_sidecar_hazard,
)
from evidence_persistence.errors import PersistenceError, SchemaVersionError

__all__ = ["FailedAttempt", "SqliteFile"]

T = TypeVar("T")

# Sleeps between tries while another connection holds the lock: 50 µs, doubling up to 1 ms.
_FIRST_LOCK_POLL_SECONDS = 50e-6
_MAX_LOCK_POLL_SECONDS = 1e-3


class SqliteFile:
    """A SQLite database file used by several threads of this process and by other processes.

    Each process opens its own connection on first use (a connection inherited through ``fork``
    is abandoned, never used). Calls are serialised by a lock, so one object may be shared by
    threads. Every SQLite error is raised as ``error_type`` with a message naming the file.

    Args:
        path: Database file; its parent directory is created when missing.
        schema: Idempotent DDL script, run when ``PRAGMA user_version`` is below
            ``schema_version``.
        schema_version: Stored in ``PRAGMA user_version`` once the schema script and
            ``migrate`` have run. Raise it when the schema changes so existing files migrate.
            A file with a higher version was written by a newer release, and every call on it
            raises ``SchemaVersionError`` without changing it.
        migrate: Brings an existing file up to ``schema_version``, such as adding columns. It
            runs after the schema script in the same transaction and must be idempotent, because
            two processes may both find the old version and run it one after the other.
        upgrade: False opens a file of a lower version without running the schema script or
            ``migrate``, so a read-only file or a file that older processes still use stays
            as it is. Only reads of tables and columns that every version has may use it.
        error_type: Exception class raised for SQLite errors (a ``PersistenceError``).
        data_error_type: Exception class raised instead of ``error_type`` when SQLite rejects
            the data itself (``IntegrityError`` or ``DataError``, such as a failed constraint,
            or a value whose type cannot be bound, see :func:`is_binding_error`), which a retry
            of the same rows cannot fix. None raises ``error_type`` for those too.
        label: What the file is, for messages ("queue", "store").
        path_setting: Setting that selects the file, such as ``PERSISTENCE_STORE_PATH``, named
            in the message of a ``SchemaVersionError``.
        busy_timeout_ms: How long a statement waits for another connection's lock.
        lock_retries: Attempts of a transaction whose lock wait timed out.
        synchronous: ``PRAGMA synchronous`` value, ``"FULL"`` or ``"NORMAL"``.
        wal_autocheckpoint: WAL size in pages at which a committing connection of this process
            runs a checkpoint itself (``PRAGMA wal_autocheckpoint``; SQLite's default is 1000).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        schema: str,
        error_type: type[PersistenceError],
        label: str,
        path_setting: str | None = None,
        data_error_type: type[PersistenceError] | None = None,
        schema_version: int = 1,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
        upgrade: bool = True,
        busy_timeout_ms: int = 1_000,
        lock_retries: int = 4,
        synchronous: str = "NORMAL",
        wal_autocheckpoint: int = 1_000,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            msg = f"synchronous={synchronous!r} is invalid; use 'FULL' or 'NORMAL'"
            raise ValueError(msg)
        self.path = Path(path)
        self._schema = schema
        self._schema_version = schema_version
        self._migrate = migrate
        self._upgrade = upgrade
        self._error_type = error_type
        self._data_error_type = data_error_type
        self._label = label
        self._path_setting = path_setting
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._wal_autocheckpoint = int(wal_autocheckpoint)
        self._lock = threading.Lock()
        self.corruption: str | None = None
        """Error name of the first damage this process met in the file, such as
        ``SQLITE_CORRUPT``, or ``None``. It stays set until the process restarts, because
        reads of undamaged pages keep succeeding while the file is damaged."""
        self._connection: sqlite3.Connection | None = None
        # URI of the file that this process's connection opened, for check_header. Resolving
        # the path on every check cost about 10 µs.
        self._check_uri = ""
        # Device and inode of the file that this process's connection opened, and a count of
        # the connections opened, for moved(). Per thread, _used.call stores both as they were
        # at the thread's last successful call, because another thread may close and reopen
        # the connection between a call and its check.
        self._file_id: FileId | None = None
        # The -wal and -shm that the open connection uses, and all three ids of the connection
        # closed last, because SQLite would read a -wal or -shm left from it as part of a new
        # file at the path (see _sqlite_sidecars).
        self._sidecar_ids: tuple[FileId | None, FileId | None] = (None, None)
        self._closed_ids: FileIds | None = None
        # Reason from moved() while the path is unsafe to open again, so that write_at_path
        # writes nothing more into the open file and logs the rejection once.
        self._unsafe_reason: str | None = None
        self._generation = 0
        self._used = threading.local()
        self._pid = os.getpid()
        self._retrying = Retrying(
            retry=retry_if_exception(is_lock_error),
            stop=stop_after_attempt(max(lock_retries - 1, 1)),
            wait=wait_exponential_jitter(multiplier=0.01, max=0.5, jitter=0.01),
            reraise=True,
        )
        self._lock_retries = lock_retries

    def write(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        on_failed_attempt: Callable[[FailedAttempt], None] | None = None,
    ) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction and commit it.

        An exception from ``work`` rolls the transaction back and propagates unchanged unless it
        is a SQLite error, which becomes ``error_type``. ``on_failed_attempt`` is called after
        each attempt that failed with a lock or I/O error, before the next attempt or the
        raise, while this object's lock is held.
        """
        return self._run(work, immediate=True, on_failed_attempt=on_failed_attempt)

    def write_statement(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work``, which executes one writing statement, as its own transaction.

        SQLite takes the write lock when such a statement starts, as ``BEGIN IMMEDIATE`` does,
        and commits when it ends. This saves the separate BEGIN and COMMIT round trips. A second
        statement in ``work`` would run in a transaction of its own, so use :meth:`write` for
        anything that must be atomic across statements.
        """
        return self._run(work, immediate=False)

    def write_at_path(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        consequence: str,
        on_moved: Callable[[str], None],
        single_statement: bool = False,
        on_failed_attempt: Callable[[FailedAttempt], None] | None = None,
        unsafe_consequence: str = "the write is rejected",
        on_unsafe_path: Callable[[str, ReopenHazard], None] | None = None,
    ) -> T:
        """Run ``work`` as :meth:`write` does, and again on the file at the path if it moved.

        A write that went into a deleted or replaced file reaches no process started later,
        so it counts only once the path still names the file after the commit. The check runs
        under the same lock as the write, so another thread that reopens the connection in
        between cannot be taken for a move. When the file moved and the path is safe to open
        again (see :meth:`reopen`), ``on_moved`` receives the reason that :meth:`moved`
        returns, with the lock held, so it should only log. Then the connection is closed and
        ``work`` runs once more, on the file at the path, and that run's result is returned.
        The first copy stays in the old file, so ``work`` must be safe to apply to both files.
        When the path is unsafe to open, the call raises, and later calls raise without running
        ``work`` until the path is safe again.

        Args:
            work: The transaction, as for :meth:`write`.
            consequence: What happened to the write, for the error message, such as "the
                append went into a file that the path no longer names, twice".
            on_moved: Called with the reason before the second write.
            single_statement: Run ``work`` as :meth:`write_statement` does.
            on_failed_attempt: As for :meth:`write`.
            unsafe_consequence: What happens to the write when the path is unsafe to open,
                for the error message, such as "the batch stays queued".
            on_unsafe_path: Called with the reason and the hazard the first time that the path is
                found unsafe to open, with the lock held, so it should only log.

        Raises:
            PersistenceError: ``error_type`` when a write fails, when the path is unsafe to
                open again, or when the path named another file after the second write too.
        """
        immediate = not single_statement
        with self._lock:
            if self._unsafe_reason is not None:
                self._reopen_locked(self._unsafe_reason, unsafe_consequence, on_unsafe_path)
            result = self._run_locked(
                work, immediate=immediate, on_failed_attempt=on_failed_attempt
            )
            moved = self.moved()
            if moved is None:
                return result
            self._reopen_locked(moved, unsafe_consequence, on_unsafe_path)
            on_moved(moved)
            result = self._run_locked(
                work, immediate=immediate, on_failed_attempt=on_failed_attempt
            )
            moved = self.moved()
            if moved is not None:
                self._close_locked()
                raise self._error_type(self.moved_message(moved, consequence))
            return result

    def reopen(
        self,
        reason: str,
        unsafe_consequence: str,
        on_unsafe_path: Callable[[str, ReopenHazard], None] | None = None,
    ) -> None:
        """Close the connection to a moved file so that the next call opens the path, if safe.

        Opening the path is unsafe while a -wal or -shm there is the one that this connection
        uses, left from the old database file, or while the database file is missing but a
        -wal or -shm remains, because SQLite would read it as part of the file at the path.
        It is unsafe too when the database file is in place but its -wal or -shm was deleted
        or replaced, because committed pages may exist only in the -wal that this connection
        still has open. In those cases the connection stays open, so that its files keep
        their inodes and no other file can take their numbers.

        Args:
            reason: What :meth:`moved` returned, for the error message.
            unsafe_consequence: What happens to the caller's work when the path is unsafe,
                for the error message.
            on_unsafe_path: As for :meth:`write_at_path`.

        Raises:
            PersistenceError: ``error_type`` naming the path, the problem and the fix, when
                the path is unsafe to open.
        """
        with self._lock:
            self._reopen_locked(reason, unsafe_consequence, on_unsafe_path)

    def _reopen_locked(
        self,
        reason: str,
        unsafe_consequence: str,
        on_unsafe_path: Callable[[str, ReopenHazard], None] | None,
    ) -> None:
        if self._file_id is None or self._pid != os.getpid():
            # No connection of this process is open, and _connect checks for stale files.
            self._unsafe_reason = None
            self._close_locked()
            return
        opened = FileIds(self._file_id, *self._sidecar_ids)
        current = read_file_ids(self.path)
        hazard = sidecar_hazard(self.path, current, opened) or stale_sidecar_hazard(
            self.path, current, opened
        )
        if hazard is None:
            # Closing a connection to a moved file neither checkpoints it nor deletes the -wal
            # and -shm files at the path, which may belong to the new file. SQLite 3.40.1
            # checks that the database file is unmoved first (tried with two processes).
            self._unsafe_reason = None
            self._close_locked()
            return
        # NOTE: no PRAGMA wal_checkpoint runs here. It would copy the open -wal's pages into
        # the database file under locks kept in the old -shm, which a connection that opened
        # the path since then does not see, so it could overwrite pages that connection uses.
        if self._unsafe_reason is None and on_unsafe_path is not None:
            on_unsafe_path(reason, hazard)
        self._unsafe_reason = reason
        raise self._error_type(self._unsafe_path_message(reason, hazard, unsafe_consequence))

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` outside an explicit transaction; for single-statement reads."""
        return self._run(work, immediate=False)

    def checkpoint(self) -> tuple[int, int]:
        """Copy committed WAL pages into the database file without blocking other writers.

        Runs ``PRAGMA wal_checkpoint(PASSIVE)``, which skips pages that a reader still needs.

        Returns:
            The WAL's size in pages and how many of them are now in the database file.
        """
        row = self.read(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        return int(row[1]), int(row[2])

    def integrity_problems(self, limit: int = 10) -> list[str]:
        """Run ``PRAGMA quick_check`` and return up to ``limit`` problems; empty means intact.

        The check reads every page, about 0.1 s for a 130 MB queue of 100,000 records with the
        file in the page cache. A problem found also sets :attr:`corruption`. The messages
        name pages, tables and row ids, never stored values.
        """

        def check(connection: sqlite3.Connection) -> list[str]:
            try:
                rows = connection.execute(f"PRAGMA quick_check({int(limit)})").fetchall()
            except sqlite3.DatabaseError as exc:
                # Damage to the schema or to an interior page stops the check itself.
                if not is_corruption_error(exc):
                    raise
                return [f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)}: {exc}"]
            lines = [line for (text,) in rows for line in str(text).splitlines()]
            return [line for line in lines if line != "ok" and not line.startswith("***")]

        problems = self.read(check)
        if problems and self.corruption is None:
            self.corruption = "quick_check"
        return problems

    def check_header(self) -> None:
        """Read the file's header through a new connection, as a newly started process would.

        This process's connection keeps page 1, which contains the header, in its page cache
        while no other connection commits (SQLite 3.40 in WAL mode). It therefore goes on
        reading and writing a file whose first bytes were overwritten, while every new
        connection fails with SQLITE_NOTADB. The check first opens this process's connection
        if needed, which creates a missing file as any other call does. Then it opens a second
        connection without creating the file and runs ``PRAGMA schema_version``, which reads
        page 1 from the WAL or the file. This process's connection stays open, so a failed check
        closes nothing and checkpoints nothing into the damaged file. A lock error of the second
        connection passes the check, because a held lock does not indicate damage.

        Raises:
            PersistenceError: ``error_type`` when a new connection cannot open or read the
                file, such as SQLITE_NOTADB for an overwritten header or SQLITE_CANTOPEN for a
                missing file. Damage also sets :attr:`corruption`.
        """
        self.read(lambda _connection: None)
        with self._lock:
            try:
                connection = sqlite3.connect(
                    self._check_uri,
                    uri=True,
                    timeout=0,
                    isolation_level=None,
                    check_same_thread=False,
                )
                try:
                    connection.execute("PRAGMA schema_version").fetchone()
                finally:
                    connection.close()
            except sqlite3.Error as exc:
                if is_lock_error(exc):
                    return
                if is_corruption_error(exc) and self.corruption is None:
                    self.corruption = getattr(exc, "sqlite_errorname", type(exc).__name__)
                raise self._translate(exc) from exc

    def moved(self) -> str | None:
        """Tell whether the path still names the file that this thread's last call used.

        A connection keeps writing to a file that was deleted, or renamed and replaced, under
        it, and a process opened later uses the new file at the path. One ``stat`` of the path
        compares the path's device and inode with those of the file when the connection opened
        it. The connection keeps the old inode open, so the file system cannot give its number
        to a new file meanwhile. Called right after a write, a result of ``None`` means that
        the write is in the file at the path. On the 2 shared cores of the development machine
        the ``stat`` took 2 µs in a loop and added 7 µs to the median append.

        Returns:
            ``"missing"`` when nothing exists at the path, and ``"replaced"`` when another file
            does. ``"reopened"`` when another thread closed the connection since this thread's
            call, because the old inode may then be free and its number reused by the file at
            the path. With the database file in place, ``"wal_missing"``, ``"wal_replaced"``,
            ``"shm_missing"`` or ``"shm_replaced"`` when its -wal or -shm is not the file that
            the connection opened, which two more ``stat`` calls find. ``None`` when the path
            names those files, or when this thread has made no successful call since it closed
            the connection.
        """
        used: tuple[int, FileId | None] | None = getattr(self._used, "call", None)
        if used is None or self._pid != os.getpid():
            return None
        generation, file_id = used
        if generation != self._generation:
            return "reopened"
        if file_id is None:
            return None
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return "missing"
        except OSError:
            # A path that cannot be read now (permissions, I/O) does not show which file it
            # names, so it counts as unmoved, and the next write reports the error.
            return None
        if (status.st_dev, status.st_ino) != file_id:
            return "replaced"
        return sidecar_moved(self.path, FileIds(file_id, *self._sidecar_ids))

    def moved_message(self, reason: str, consequence: str) -> str:
        """Build the error message for a ``reason`` that :meth:`moved` returned."""
        return (
            f"{self._moved_event(reason)}, so {consequence}; stop deleting or moving the file "
            "under running processes (docs/persistence.md, section Deleted or replaced SQLite "
            "file)"
        )

    def _moved_event(self, reason: str) -> str:
        events = {
            "missing": "was deleted while this process had it open",
            "replaced": "was replaced by another file while this process had it open",
            "reopened": "was reopened by another thread of this process after a write, "
            "because it was deleted or replaced or failed",
            "wal_missing": "lost its -wal file, deleted while this process had it open",
            "wal_replaced": "had its -wal file replaced while this process had it open",
            "shm_missing": "lost its -shm file, deleted while this process had it open",
            "shm_replaced": "had its -shm file replaced while this process had it open",
        }
        return f"{self._label} file {str(self.path)!r} {events.get(reason, reason)}"

    def _unsafe_path_message(
        self, reason: str, hazard: ReopenHazard, unsafe_consequence: str
    ) -> str:
        return (
            f"{self._moved_event(reason)}, and {hazard.problem}, so this process does not open "
            f"the path again and {unsafe_consequence}; {hazard.fix} (docs/persistence.md, "
            "section Deleted or replaced SQLite file)"
        )

    def check_schema_version(self) -> None:
        """Reject a file that a newer release wrote, without creating or changing any file.

        A missing file passes, because the first call creates it with this code's schema. So
        does a file that cannot be read now (locked, damaged, unreadable), because the first
        call reports that with the usual error and retries.

        Raises:
            SchemaVersionError: The file's ``PRAGMA user_version`` is above ``schema_version``.
        """
        if not self.path.is_file():
            return
        try:
            connection = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=0
            )
            try:
                version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            finally:
                connection.close()
        except sqlite3.Error:
            return
        if version > self._schema_version:
            raise self._version_error(version)

    def close(self) -> None:
        """Close this process's connection; the next call opens a new one."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None
        self._forget_file_ids()
        self._used.call = None

    def _forget_file_ids(self) -> None:
        if self._file_id is not None:
            self._closed_ids = FileIds(self._file_id, *self._sidecar_ids)
        self._file_id = None
        self._sidecar_ids = (None, None)

    def _run(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        immediate: bool,
        on_failed_attempt: Callable[[FailedAttempt], None] | None = None,
    ) -> T:
        with self._lock:
            return self._run_locked(work, immediate=immediate, on_failed_attempt=on_failed_attempt)

    def _run_locked(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        immediate: bool,
        on_failed_attempt: Callable[[FailedAttempt], None] | None = None,
    ) -> T:
        attempt: Callable[..., T] = self._attempt_until_timeout
        if on_failed_attempt is not None:
            attempt = ReportingAttempt(
                self._attempt_until_timeout, self._lock_retries, on_failed_attempt
            )
        try:
            try:
                result: T = attempt(work, immediate=immediate)
            except sqlite3.OperationalError as exc:
                if not is_lock_error(exc) or self._lock_retries <= 1:
                    raise
            else:
                self._used.call = (self._generation, self._file_id)
                return result
            # The first attempt runs without tenacity to keep the common path fast.
            result = self._retrying(attempt, work, immediate=immediate)
            self._used.call = (self._generation, self._file_id)
            return result
        except sqlite3.Error as exc:
            if is_corruption_error(exc) and self.corruption is None:
                self.corruption = getattr(exc, "sqlite_errorname", type(exc).__name__)
            if not is_lock_error(exc):
                # SQLite keeps a file it opened read-only read-only, even once the file
                # is writable again. Reopening on the next call lets the process recover
                # from that, a full disk or an I/O error without a restart.
                self._discard_connection()
            raise self._translate(exc) from exc

    def _discard_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._forget_file_ids()
        self._used.call = None
        if connection is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def _attempt_until_timeout(
        self, work: Callable[[sqlite3.Connection], T], *, immediate: bool
    ) -> T:
        """Run one attempt, trying again while the lock is held, for up to the busy timeout."""
        try:
            return self._attempt(work, immediate=immediate)
        except sqlite3.OperationalError as exc:
            if not is_lock_error(exc):
                raise
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        pause = _FIRST_LOCK_POLL_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # One last try, so that a timeout of 0 still makes two tries.
                return self._attempt(work, immediate=immediate)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, _MAX_LOCK_POLL_SECONDS)
            try:
                return self._attempt(work, immediate=immediate)
            except sqlite3.OperationalError as exc:
                if not is_lock_error(exc):
                    raise

    def _attempt(self, work: Callable[[sqlite3.Connection], T], *, immediate: bool) -> T:
        connection = self._connect()
        if not immediate:
            return work(connection)
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    def _connect(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # NOTE: a connection opened before fork() must not be used or closed in the child.
            self._connection = None
            self._pid = os.getpid()
        if self._connection is not None:
            return self._connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = (
                f"cannot create the directory of the {self._label} file {str(self.path)!r}: "
                f"{exc.strerror}; create it or point the path at a writable directory"
            )
            raise self._error_type(msg) from exc
        self._check_no_stale_sidecars()
        # A busy timeout of 0 makes SQLite report a held lock at once, and
        # _attempt_until_timeout does the waiting.
        connection = sqlite3.connect(
            self.path,
            timeout=0,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            # user_version marks a file whose schema exists, so a read-only file stays readable
            # and a connection takes no write lock unless it writes. It is read before the
            # journal mode is set, so a file of a newer release is left exactly as it was.
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            if version > self._schema_version:
                raise self._version_error(version)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            connection.execute(f"PRAGMA wal_autocheckpoint={self._wal_autocheckpoint}")
            if version < self._schema_version and self._upgrade:
                self._create_schema(connection)
            else:
                # SQLite creates the -wal and -shm at the first read after the journal mode
                # changed to WAL, and they must exist before their ids are read below.
                connection.execute("PRAGMA schema_version").fetchone()
            # The pragmas above opened the file, so the path names it unless it was replaced
            # within these microseconds. Such a file is then found moved at the first check.
            status = self.path.stat()
            ids = read_file_ids(self.path)
        except OSError as exc:
            connection.close()
            msg = (
                f"{self._label} file {str(self.path)!r} was deleted right after it was opened "
                f"({exc.strerror}); the next call opens it again"
            )
            raise self._error_type(msg) from exc
        except BaseException:
            connection.close()
            raise
        self._file_id = (status.st_dev, status.st_ino)
        self._sidecar_ids = (ids.wal, ids.shm)
        self._generation += 1
        self._connection = connection
        self._check_uri = f"{self.path.resolve().as_uri()}?mode=rw"
        return connection

    def _check_no_stale_sidecars(self) -> None:
        """Raise ``error_type`` when the path has a -wal or -shm left from the file closed last."""
        if self._closed_ids is None:
            return
        hazard = stale_sidecar_hazard(self.path, read_file_ids(self.path), self._closed_ids)
        if hazard is None:
            return
        msg = (
            f"{self._label} file {str(self.path)!r} was deleted or replaced, and "
            f"{hazard.problem}, so this process does not open the path; {hazard.fix} "
            "(docs/persistence.md, section Deleted or replaced SQLite file)"
        )
        raise self._error_type(msg)

    def _create_schema(self, connection: sqlite3.Connection) -> None:
        # executescript() commits any open transaction first, so the script begins its own. The
        # transaction stays open for the migration and the version mark, then commits.
        connection.executescript(f"BEGIN IMMEDIATE;\n{self._schema}\n")
        try:
            if self._migrate is not None:
                self._migrate(connection)
            connection.execute(f"PRAGMA user_version = {int(self._schema_version)}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _version_error(self, found: int) -> SchemaVersionError:
        path = str(self.path.resolve())
        target = self._path_setting or "the process"
        msg = (
            f"{self._label} file {path!r} has schema version {found} (PRAGMA user_version), "
            f"but this release of evidence_persistence supports version "
            f"{self._schema_version} at most, so it leaves the file unchanged; upgrade the "
            "worker and the gateway to the release that wrote the file, or point "
            f"{target} at another {self._label} file"
        )
        return SchemaVersionError(msg, path=path, found=found, supported=self._schema_version)

    def _translate(self, exc: sqlite3.Error) -> PersistenceError:
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        if is_schema_error(exc):
            # Checked first: a schema mismatch fails every row, so it must not be taken as one
            # row's fault and dead-letter the records one by one.
            msg = (
                f"{self._label} file {str(self.path)!r} failed with {name} ({exc}); its tables "
                "do not match the schema of this release (a missing table or column, or a "
                "table without its primary key), which no retry fixes; stop the processes that "
                "use the file, move it aside with its -wal and -shm files so that the next "
                "start creates the tables anew, and copy the rows over if they matter"
            )
            return self._error_type(msg)
        if self._data_error_type is not None and (
            isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError) or is_binding_error(exc)
        ):
            msg = (
                f"{self._label} file {str(self.path)!r} rejected a row with {name} ({exc}); "
                "the same rows would fail again, so the batch is split to find the record"
            )
            return self._data_error_type(msg)
        if is_corruption_error(exc):
            advice = (
                "the file is damaged; stop every process that uses it and recover it as "
                "docs/persistence.md, section Corrupt SQLite file, describes"
            )
        elif is_lock_error(exc):
            advice = (
                f"another process held the write lock for more than {self._busy_timeout_ms} ms "
                f"in each of {self._lock_retries} attempts; retry later"
            )
        elif isinstance(exc, sqlite3.OperationalError):
            advice = "check that the file and its directory are writable and the disk has space"
        else:
            # ProgrammingError and the like come from how a connection was used, not the disk.
            advice = (
                "the connection is reopened on the next call; if the error repeats, report it "
                "as a bug of evidence_persistence"
            )
        msg = f"{self._label} file {str(self.path)!r} failed with {name} ({exc}); {advice}"
        return self._error_type(msg)
