"""The worker command turns SIGTERM and SIGINT into a clean stop, however many arrive."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from evidence_persistence.cli import _drain_until_signal

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals")


class _WaitingDrainer:
    """Stands in for QueueDrainer: waits on the stop event as the real one does between batches."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stopped_by_event = False

    def run(
        self,
        stop: threading.Event,
        *,
        exit_when_empty: bool,
        on_stop: object,
        halt: threading.Event,
    ) -> None:
        if self.fail:
            raise RuntimeError("sink exploded")
        while not stop.wait(0.01):
            pass
        self.stopped_by_event = True


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def _storm(count: int) -> None:
    time.sleep(0.1)
    for _ in range(count):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.usefixtures("restore_handlers")
@pytest.mark.parametrize("pairs", [1, 500])
def test_signal_storm_stops_drainer(pairs: int) -> None:
    """One or 500 SIGINT and SIGTERM pairs end the drain once, and the call returns."""
    drainer = _WaitingDrainer()
    received: list[int] = []
    stop = threading.Event()
    sender = threading.Thread(target=_storm, args=(pairs,))
    sender.start()

    started = time.monotonic()
    _drain_until_signal(drainer, stop, received, once=False, on_stop=lambda: None)  # type: ignore[arg-type]
    sender.join(timeout=10)

    assert time.monotonic() - started < 10
    assert drainer.stopped_by_event
    assert stop.is_set()
    assert received[0] in (signal.SIGINT, signal.SIGTERM)
    assert len(received) >= 1


@pytest.mark.usefixtures("restore_handlers")
def test_drain_failure_reraised() -> None:
    """An exception of the drain thread is raised in the calling thread."""
    with pytest.raises(RuntimeError, match="sink exploded"):
        _drain_until_signal(
            _WaitingDrainer(fail=True),  # type: ignore[arg-type]
            threading.Event(),
            [],
            once=False,
            on_stop=lambda: None,
        )
