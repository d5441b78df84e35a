"""Child process of the tests: append records one by one and print each index once appended.

Usage: ``python persistence_appender.py QUEUE_PATH FIRST COUNT``. A line ``<index>`` on stdout
means the append of that record returned. Exits 3 and prints the error on any queue failure.
"""

from __future__ import annotations

import sys

from evidence_persistence import PersistenceError, PredictionQueue
from persistence_testkit import build_record


def main() -> int:
    """Append COUNT records starting at FIRST and acknowledge each on stdout."""
    path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    queue = PredictionQueue(path, max_depth=1_000_000, busy_timeout_ms=1_000, lock_retries=8)
    for index in range(first, first + count):
        try:
            queue.append(build_record(index))
        except PersistenceError as exc:
            print(f"append {index} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 3
        sys.stdout.write(f"{index}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
