"""Classify SQLite errors: lock, outage, damaged file, schema mismatch or one bad value.

Callers decide from the class whether to retry, reopen, split the batch or give up.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "is_binding_error",
    "is_corruption_error",
    "is_lock_error",
    "is_outage_error",
    "is_schema_error",
]

# Primary SQLite result codes (the low byte of an extended code), from sqlite3.h.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
# Messages of SQLite (3.40) when a statement names a table, column or key that the file's schema
# lacks, such as a store table created without its primary key.
_SCHEMA_MISMATCH_MESSAGES = (
    "ON CONFLICT clause does not match any PRIMARY KEY",
    "no such table",
    "no such column",
    "has no column named",
)


def is_lock_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` is SQLite's "database is locked" or "database table is locked"."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc)


def is_outage_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` comes from the file or its lock, not from the data or the schema.

    True for lock errors, I/O errors, a full disk, a read-only or missing file (all
    ``OperationalError``) and a damaged file. False for errors of the data or of the schema,
    which fail the same write again however long one waits.
    """
    if is_corruption_error(exc):
        return True
    return isinstance(exc, sqlite3.OperationalError) and not is_schema_error(exc)


def is_corruption_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` is SQLite's SQLITE_CORRUPT or SQLITE_NOTADB: the file is damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and code & 0xFF
        in (
            _SQLITE_CORRUPT,
            _SQLITE_NOTADB,
        )
    )


def is_schema_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` shows that the file's tables differ from the schema the code expects.

    Such an error fails every statement alike, so a retry of the same rows cannot fix it.
    """
    if not isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError):
        return False
    text = str(exc)
    return any(message in text for message in _SCHEMA_MISMATCH_MESSAGES)


def is_binding_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` is the ``sqlite3`` module rejecting one bound value's type.

    CPython 3.11.7 raises ``ProgrammingError("Error binding parameter N: type 'dict' is not
    supported")``, and older versions raise ``InterfaceError("Error binding parameter N -
    probably unsupported type.")``. Both come from a value of the statement, not from the
    connection. Other ``ProgrammingError`` cases, such as a closed connection or a wrong number
    of parameters, fail every statement alike and are not matched.
    """
    if not isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return False
    return str(exc).startswith("Error binding parameter")
