"""Exceptions raised by ``evidence_persistence``.

Every error the package raises on purpose derives from :class:`PersistenceError`::

    PersistenceError
    ├── QueueError
    │   ├── QueueFullError          the queue is at max_depth, so the append was rejected
    │   └── QueueUnavailableError   the queue file cannot be opened or written: locked too long,
    │                               read-only, disk full or missing directory
    ├── RecordDecodeError           a queued payload cannot be turned back into a record
    ├── SchemaVersionError          a queue or store file was written by a newer version
    └── SinkError
        ├── SinkUnavailableError    transient: the store is unreachable or locked; retry later
        └── SinkConfigurationError  the sink settings are incomplete (missing credentials)

Invalid arguments from a caller (a feature vector of the wrong length, a naive datetime) raise
the built-in ``ValueError`` or ``TypeError`` instead.
"""

from __future__ import annotations

__all__ = [
    "PersistenceError",
    "QueueError",
    "QueueFullError",
    "QueueUnavailableError",
    "RecordDecodeError",
    "SchemaVersionError",
    "SinkConfigurationError",
    "SinkError",
    "SinkRecordError",
    "SinkUnavailableError",
]


class PersistenceError(Exception):
    """Base class of every error raised by the persistence package."""


class QueueError(PersistenceError):
    """An append to or a read from the durable queue failed."""


class QueueFullError(QueueError):
    """The queue already contains its configured maximum number of records."""

    def __init__(self, message: str, *, depth: int, max_depth: int) -> None:
        super().__init__(message)
        self.depth = depth
        self.max_depth = max_depth


class QueueUnavailableError(QueueError):
    """The queue file cannot be opened or written."""


class RecordDecodeError(PersistenceError):
    """A stored queue payload is not a valid encoded prediction record."""


class SchemaVersionError(PersistenceError):
    """A SQLite file's ``PRAGMA user_version`` is newer than the schema this code writes.

    The file was created or migrated by a newer version, so this code neither reads nor writes
    it: its schema script would overwrite the version mark, and its rows might lack columns
    the newer schema requires.
    """

    def __init__(self, message: str, *, path: str, found: int, supported: int) -> None:
        super().__init__(message)
        self.path = path
        self.found = found
        self.supported = supported


class SinkError(PersistenceError):
    """Writing a batch to the sink failed."""


class SinkUnavailableError(SinkError):
    """The sink cannot be reached right now; the batch should be retried later unchanged."""


class SinkRecordError(SinkError):
    """A row of the batch that the sink rejected, such as on a failed constraint.

    Retrying the same row fails again, so the worker treats it as a bad record, not an outage.
    """


class SinkConfigurationError(SinkError):
    """The sink settings are incomplete or inconsistent."""
