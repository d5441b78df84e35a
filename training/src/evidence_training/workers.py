"""Run training-set chunks in forked worker processes while this process imports the trainer."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from tqdm.auto import tqdm

from evidence_training.errors import WorkerError

__all__ = ["run_chunks"]

_T = TypeVar("_T")


def run_chunks(
    tasks: Sequence[Callable[[], _T]],
    *,
    sizes: Sequence[int],
    jobs: int,
    progress: bool,
    preload: Sequence[str] = (),
) -> list[_T]:
    """Call every task and return the results in task order.

    With ``jobs`` > 1 the tasks run in that many forked worker processes, so each task must be
    picklable (a module-level function or a ``functools.partial`` of one). The modules named in
    ``preload`` are imported in this process while the workers run, so that their import cost
    (scikit-learn and matplotlib take several CPU seconds) overlaps the data work instead of
    preceding it. With ``jobs`` 1 the tasks run here and ``preload`` is imported afterwards.

    Args:
        tasks: callables that each build one chunk.
        sizes: rows per task, for the progress bar.
        jobs: worker processes. With 1, this process runs the tasks.
        progress: show a progress bar on stderr when it is a terminal.
        preload: module names to import in this process before returning.

    Raises:
        WorkerError: a worker process died, for example killed by the out-of-memory killer.
            The pool cannot tell which signal or exit code ended it.
    """
    results: list[_T] = []
    # tqdm's disable=None turns the bar off when stderr is no terminal, because a log file
    # would get every redraw joined by carriage returns.
    disable = None if progress else True
    with tqdm(total=sum(sizes), desc="features", unit="pair", disable=disable) as bar:
        if jobs <= 1:
            for task, size in zip(tasks, sizes, strict=True):
                results.append(task())
                bar.update(size)
            _import_all(preload)
            return results
        # NOTE: fork, because a spawned worker re-imports the `evidence-train` entry point. The
        # pool forks all workers at the first submit (CPython 3.11 with the fork context), which
        # is before this process imports scikit-learn, so no OpenMP pool exists yet in a worker.
        # Python 3.12+ warns when a process with threads forks (tqdm's monitor thread is one).
        context = multiprocessing.get_context("fork")
        try:
            with ProcessPoolExecutor(
                max_workers=jobs, mp_context=context, initializer=_ignore_interrupts
            ) as pool:
                try:
                    with _interrupts_blocked():
                        futures: list[Future[_T]] = [pool.submit(task) for task in tasks]
                    _import_all(preload)
                    for future, size in zip(futures, sizes, strict=True):
                        results.append(future.result())
                        bar.update(size)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        except BrokenProcessPool as exc:
            msg = (
                f"one of the {jobs} worker processes died before it returned its pairs, "
                "possibly killed by the out-of-memory killer or a signal; retry with fewer "
                "workers (evidence-train --jobs; 1 runs no workers) or with more free memory"
            )
            raise WorkerError(msg) from exc
    return results


@contextlib.contextmanager
def _interrupts_blocked() -> Iterator[None]:
    """Block SIGINT in this thread, so that the workers forked meanwhile start with it blocked.

    A forked child inherits the signal mask. Without the block, a Ctrl-C that arrived between
    the fork and ``_ignore_interrupts`` raised KeyboardInterrupt in the child's start-up code,
    which printed a traceback and broke the pool. A SIGINT to this process still raises
    KeyboardInterrupt here, at the latest when the mask is restored.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ignore_interrupts() -> None:
    # Ctrl-C in a terminal signals the whole process group. Only this process should stop the
    # pool: a worker interrupted while it reads its next task prints a traceback of the pool's
    # internals, and the cancelled pool stops the workers anyway. The worker starts with SIGINT
    # blocked (see _interrupts_blocked). Ignoring it discards a pending one, and only then is
    # it safe to unblock.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _import_all(names: Sequence[str]) -> None:
    for name in names:
        importlib.import_module(name)
