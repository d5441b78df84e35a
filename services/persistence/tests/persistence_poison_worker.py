"""Child process of the tests: ``evidence-persistence worker`` that dies on one record.

Usage: ``python persistence_poison_worker.py PREDICTION_ID [WORKER OPTIONS...]``. The SQLite
sink's ``write_batch`` ends the process with ``os._exit(137)`` whenever the batch contains
``PREDICTION_ID``, as a segfault or an out-of-memory kill caused by that record would: no
exception, no release of the batch, no log line. Other batches are written as usual.

Everything else is the real worker: settings, queue file, drain loop, logging and exit codes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from evidence_persistence import PredictionRecord
from evidence_persistence._sink import WriteResult
from evidence_persistence.cli import main
from evidence_persistence.sinks.sqlite import SqliteSink

# The exit status of a process killed by SIGKILL, as a shell reports it.
POISON_EXIT_STATUS = 137

if __name__ == "__main__":
    poison_id = sys.argv[1]
    write_batch = SqliteSink.write_batch

    def write_unless_poisoned(self: SqliteSink, records: Sequence[PredictionRecord]) -> WriteResult:
        if any(record.prediction_id == poison_id for record in records):
            os._exit(POISON_EXIT_STATUS)
        return write_batch(self, records)

    SqliteSink.write_batch = write_unless_poisoned  # type: ignore[method-assign]
    sys.argv = ["evidence-persistence", "worker", *sys.argv[2:]]
    main()
