"""structlog set-up of the worker and the CLI: JSON lines on stdout with an allow-list of keys.

The worker handles records that carry health data: policy numbers, feature values and, when raw
evidence storage is on, the MIB and Rx XML. Exception messages can quote those values (a sink or
database error quoting a row, say), so no log line carries an exception message or a traceback.
Only the keys in ``ALLOWED_KEYS`` reach the output, through the filter of ``evidence_logging``,
with scalar values cut to 200 characters. An exception is reduced to its type, and to the code
locations of its traceback when a caller logs ``exc_info``. Records of the standard library's
``logging`` (Snowpark, the Snowflake connector) go through the same filter and keep their
message template without the interpolated arguments, except the ``snowflake.connector``
loggers, whose own filter fills the arguments in first (see
``evidence_logging.keep_message_template``).
"""

from __future__ import annotations

import re

import evidence_logging
from evidence_logging import exception_frames

__all__ = [
    "ALLOWED_KEYS",
    "configure_logging",
    "describe_error",
    "error_type_of",
    "exception_frames",
    "filter_allowed_keys",
]

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger", "owner", "batch_size", "batches", "records",
        "dead_lettered", "outcome", "claimed", "persisted", "first_seq", "last_seq", "duration_ms",
        "retry_in_seconds", "outages_in_a_row", "prediction_id", "seq", "attempts",
        "error_type", "error_code", "exception_type", "frames", "signal", "host", "port",
        "queue_path", "sink", "store_raw_evidence", "dropped_keys", "prediction_ids",
        "max_ahead_seconds", "tolerance_seconds", "attempt", "max_attempts", "waited_ms",
        "failed_attempts", "outage_ms", "queue_depth", "grace_seconds", "remaining",
        "timed_out", "interrupted", "store_path", "reason", "fix", "action",
        "dead_letters_left_behind", "claimed_alone",
    }
)  # fmt: skip
_ERROR_TYPE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*): ")

filter_allowed_keys = evidence_logging.AllowedKeysFilter(ALLOWED_KEYS)
"""The structlog processor that ``configure_logging`` installs, for tests and other chains."""


def describe_error(exc: BaseException) -> dict[str, str]:
    """Return the log fields of an error: its type and, when known, the code of its cause.

    The code is SQLite's error name (``SQLITE_FULL``, ``SQLITE_BUSY``) or the type of the
    exception the error was raised from, never a message.
    """
    fields = {"error_type": type(exc).__name__}
    cause = exc.__cause__
    if cause is not None:
        name = getattr(cause, "sqlite_errorname", None)
        fields["error_code"] = name if isinstance(name, str) else type(cause).__name__
    return fields


def error_type_of(error: str) -> str:
    """Return the exception type that starts a stored error text ``"Type: message"``.

    Texts in another form, such as those stored by older versions, give a placeholder, because
    the rest of the text may quote the record.
    """
    match = _ERROR_TYPE.match(error)
    return match.group(1) if match else "(error type unknown; use --show-errors)"


def configure_logging(level: str = "INFO") -> None:
    """Render every structlog and standard-library event as filtered JSON on stdout.

    Standard-library records (Snowpark, the Snowflake connector) keep their message template
    without its arguments, which may be values such as a SQL text or a row. The
    ``snowflake.connector`` loggers are the exception: their own filter fills the arguments in
    before this handler receives the record, and the line is then cut to 200 characters.
    """
    evidence_logging.configure_logging(
        ALLOWED_KEYS,
        level=level,
        stream="stdout",
        include_frames=True,
        stdlib_template_only=True,
    )
