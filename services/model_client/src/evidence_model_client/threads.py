"""Limit the OpenMP and BLAS threads that one ``predict_proba`` call may start.

scikit-learn's ``HistGradientBoostingClassifier.predict_proba`` runs OpenMP loops with one thread
per core by default. For one row, starting and synchronising those threads costs far more than
the work, and at 200 rows they brought no gain. On a loaded 2-core machine the OpenMP threads
also wait for cores that other processes hold. In one measurement (docs/benchmarks.md) a
one-row prediction took a median of 146 ms with the default and 2.8 ms with one thread.

libgomp keeps the OpenMP thread count per calling thread, so a limit set once at start-up does
not reach the worker threads that score requests. ``ScoringThreads.limit()`` therefore sets the
limit around each call. The controller, which scans the loaded native libraries, is built once,
so entering and leaving the limit costs about 15 µs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["ScoringThreads"]


class ScoringThreads:
    """Thread limit of the native libraries during scoring.

    Build it after the model is loaded: the controller only finds the libraries (such as libgomp)
    that are loaded when it is created.

    Args:
        max_threads: OpenMP and BLAS threads one scoring call may use.
    """

    def __init__(self, max_threads: int) -> None:
        if max_threads < 1:
            msg = f"max_threads must be >= 1, got {max_threads}"
            raise ValueError(msg)
        self.max_threads = max_threads
        self._controller = ThreadpoolController()

    def limit(self) -> AbstractContextManager[Any]:
        """Return a context manager that caps the threads of every loaded library."""
        limiter: AbstractContextManager[Any] = self._controller.limit(limits=self.max_threads)
        return limiter

    def libraries(self) -> list[str]:
        """Return the internal API names of the libraries the limit applies to, for logs."""
        return sorted({str(info["internal_api"]) for info in self._controller.info()})
