"""Child process of the tests: ``evidence-persistence worker`` with a SQLite sink that fails.

Usage: ``python persistence_failing_worker.py MODE [WORKER OPTIONS...]``. The sink fails on every
batch in a way that quotes the batch's values, as a real database or driver error can:

- ``unavailable``: ``write_batch`` raises ``SinkUnavailableError`` quoting the policy number and
  the XML, as a driver error that quotes a rejected value would.
- ``data-error``: ``write_batch`` raises ``ValueError`` quoting the same values, and a library
  logger logs the policy number as a %-argument.
- ``crash``: ``write_batch`` returns a result whose row counts raise ``RuntimeError`` with the
  same values, an exception that escapes the drain loop.

Everything else is the real worker: settings, queue file, drain loop, logging and exit codes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import cast

from evidence_persistence import PredictionRecord, SinkUnavailableError
from evidence_persistence._sink import WriteResult
from evidence_persistence.cli import main
from evidence_persistence.sinks.sqlite import SqliteSink


def _quote(records: Sequence[PredictionRecord]) -> str:
    record = records[0]
    xml = (record.mib_xml or b"").decode() + (record.rx_xml or b"").decode()
    return f"policy {record.policy_number} with evidence {xml}"


class _ExplodingResult:
    def __init__(self, records: Sequence[PredictionRecord]) -> None:
        self._message = f"cannot count rows of {_quote(records)}"

    @property
    def online_features(self) -> int:
        raise RuntimeError(self._message)


def _unavailable(self: SqliteSink, records: Sequence[PredictionRecord]) -> WriteResult:
    msg = f"store unreachable while writing {_quote(records)}"
    raise SinkUnavailableError(msg)


def _data_error(self: SqliteSink, records: Sequence[PredictionRecord]) -> WriteResult:
    logging.getLogger("snowflake.connector.cursor").warning(
        "statement failed for %s", records[0].policy_number
    )
    msg = f"store rejected {_quote(records)}"
    raise ValueError(msg)


def _crash(self: SqliteSink, records: Sequence[PredictionRecord]) -> WriteResult:
    # A stand-in whose row counts raise, so the drain loop fails when it reads them.
    return cast(WriteResult, _ExplodingResult(records))


if __name__ == "__main__":
    mode = sys.argv[1]
    # The child process replaces the sink's method with the failure mode named by MODE.
    SqliteSink.write_batch = {  # type: ignore[method-assign]
        "unavailable": _unavailable,
        "data-error": _data_error,
        "crash": _crash,
    }[mode]
    sys.argv = ["evidence-persistence", "worker", *sys.argv[2:]]
    main()
