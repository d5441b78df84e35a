"""The -wal and -shm files next to a SQLite database, and when reopening its path is unsafe.

In WAL mode SQLite keeps committed pages in ``<path>-wal`` until a checkpoint copies them into
the database file, and the WAL index in ``<path>-shm``. A connection opens both by their names
next to the database, so a connection opened at a path reads whatever -wal and -shm lie there
as part of the database file at the path. While any connection is open, SQLite keeps both
files, so their device and inode stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SIDECAR_REASONS",
    "FileId",
    "FileIds",
    "ReopenHazard",
    "read_file_ids",
    "sidecar_hazard",
    "sidecar_moved",
    "stale_sidecar_hazard",
]

FileId = tuple[int, int]

# Reasons that SqliteFile.moved() returns when the database file is in place but its -wal or
# -shm is not the file that the connection opened.
SIDECAR_REASONS = frozenset({"wal_missing", "wal_replaced", "shm_missing", "shm_replaced"})

_SUFFIXES = ("-wal", "-shm")


@dataclass(frozen=True)
class FileIds:
    """Device and inode of a database file and of its -wal and -shm; None for a missing one."""

    database: FileId | None
    wal: FileId | None
    shm: FileId | None

    def sidecars(self) -> tuple[tuple[str, FileId | None], ...]:
        """Pair each sidecar suffix with its id."""
        return (("-wal", self.wal), ("-shm", self.shm))


@dataclass(frozen=True)
class ReopenHazard:
    """Reason that opening the path again is unsafe, and the operator's fix for it."""

    problem: str
    fix: str


def read_file_ids(path: Path) -> FileIds:
    """Stat the database file and its -wal and -shm; an unreadable file counts as missing."""
    database, wal, shm = (_file_id(Path(f"{path}{suffix}")) for suffix in ("", *_SUFFIXES))
    return FileIds(database=database, wal=wal, shm=shm)


def sidecar_moved(path: Path, opened: FileIds) -> str | None:
    """Return ``"wal_missing"`` and the like when a -wal or -shm that was opened is gone.

    Only sidecars that existed when the connection opened are compared. A path that cannot be
    read for another reason than a missing file counts as unmoved, as in ``SqliteFile.moved``.
    """
    for suffix, opened_id in opened.sidecars():
        if opened_id is None:
            continue
        try:
            status = Path(f"{path}{suffix}").stat()
        except FileNotFoundError:
            return f"{suffix[1:]}_missing"
        except OSError:
            continue
        if (status.st_dev, status.st_ino) != opened_id:
            return f"{suffix[1:]}_replaced"
    return None


def sidecar_hazard(path: Path, current: FileIds, opened: FileIds) -> ReopenHazard | None:
    """Describe a -wal or -shm deleted or replaced next to a database file still in place.

    Pages committed before the change may exist only in the deleted -wal that the open
    connection still reads, and a new connection would read the database file without them.
    A later checkpoint of the old -wal, by any connection that still has it open, would also
    overwrite pages that the new connections use. So the path must not be opened again.
    """
    if current.database is None or current.database != opened.database:
        return None
    changed = [
        suffix
        for (suffix, opened_id), (_, current_id) in zip(
            opened.sidecars(), current.sidecars(), strict=True
        )
        if opened_id is not None and current_id != opened_id
    ]
    if not changed:
        return None
    names = " and ".join(f"{path}{suffix}" for suffix in changed)
    return ReopenHazard(
        problem=(
            f"{names!r} was deleted or replaced while the database file stayed in place, so "
            "committed pages may exist only in the deleted -wal that this process still has open"
        ),
        fix=(
            "stop the gateway and the worker normally (not with SIGKILL): the last process to "
            "close the file copies the pages of the deleted -wal into the database file; then "
            "start them again"
        ),
    )


def stale_sidecar_hazard(path: Path, current: FileIds, opened: FileIds) -> ReopenHazard | None:
    """Describe a -wal or -shm of the old database left next to a moved database file.

    ``mv backup.sqlite3 store.sqlite3`` and ``rm store.sqlite3`` change only the database
    file, so the -wal and -shm that the old connection used stay at the path. SQLite would
    read their pages as part of the new file. Then the old file's rows take the place of the
    replacement's, or its b-trees are damaged (``PRAGMA integrity_check`` fails).

    NOTE: the ids in ``opened`` of a connection already closed may have been reused by a new
    -wal or -shm, which is then taken for a stale one; callers check before they close.
    """
    if current.database is not None and current.database == opened.database:
        return None
    stale = [
        f"{path}{suffix}"
        for (suffix, opened_id), (_, current_id) in zip(
            opened.sidecars(), current.sidecars(), strict=True
        )
        if current_id is not None and current_id == opened_id
    ]
    if stale:
        problem = (
            f"{' and '.join(stale)!r} at the path still belong to the old database file, and "
            "SQLite would read them as part of the new one"
        )
    elif current.database is None and (current.wal is not None or current.shm is not None):
        problem = (
            f"the database file is missing but {path}-wal or {path}-shm remains, which SQLite "
            "would read as part of a new file"
        )
    else:
        return None
    return ReopenHazard(
        problem=problem,
        fix=(
            "stop the gateway and the worker, then either put the original database file back "
            f"at the path or delete the stale {path}-wal and {path}-shm, and start them again"
        ),
    )


def _file_id(path: Path) -> FileId | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino)
