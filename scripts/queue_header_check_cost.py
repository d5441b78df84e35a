"""Measure what the worker's queue-header check adds to each claim, on an empty queue.

Every claim first reads the queue file's header through a new SQLite connection
(``PredictionQueue.check_header``), so that a header overwritten under the worker's open
connection is noticed. This prints the median of 5 runs of 2,000 calls each, for an empty
claim (which includes the check) and for the check alone, in microseconds per call.

Run from the repository root after ``make setup``::

    .venv/bin/python scripts/queue_header_check_cost.py
"""

from __future__ import annotations

import statistics
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from evidence_persistence import PredictionQueue
from evidence_persistence._consumer import QueueConsumer

CALLS = 2_000
RUNS = 5


def _median_microseconds(call: Callable[[], object]) -> float:
    times = [timeit.timeit(call, number=CALLS) / CALLS * 1e6 for _ in range(RUNS)]
    return statistics.median(times)


def main() -> None:
    """Print the cost of an empty claim and of the header check alone."""
    with tempfile.TemporaryDirectory() as folder:
        queue = PredictionQueue(Path(folder) / "queue.sqlite3")
        consumer = QueueConsumer(queue, owner="bench", lease_seconds=30, max_attempts=3)
        consumer.claim(1)  # opens the connection and creates the tables
        claim = _median_microseconds(lambda: consumer.claim(100))
        check = _median_microseconds(queue.check_header)
        queue.close()
    print(f"empty claim, header check included: {claim:.1f} us")
    print(f"check_header alone: {check:.1f} us")


if __name__ == "__main__":
    main()
