"""Tests for the circuit breaker state machine, with a hand-driven clock."""

from __future__ import annotations

import pytest
from evidence_model_client.breaker import BreakerPolicy, CircuitBreaker, CircuitState
from evidence_model_client.errors import CircuitOpenError

from .conftest import current_state


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: _Clock, changes: list[CircuitState] | None = None) -> CircuitBreaker:
    on_change = changes.append if changes is not None else None
    return CircuitBreaker(BreakerPolicy(3, 10.0), clock=clock, on_change=on_change)


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.record_failure()


def test_breaker_opens_after_threshold() -> None:
    """Three consecutive failures open the circuit; two do not."""
    breaker = _breaker(_Clock())
    _fail(breaker, 2)
    assert current_state(breaker) == CircuitState.CLOSED
    _fail(breaker, 1)
    assert current_state(breaker) == CircuitState.OPEN
    with pytest.raises(CircuitOpenError, match=r"after 3 consecutive .* next probe in 10\.00 s"):
        breaker.before_call()


def test_breaker_success_resets_count() -> None:
    """A success between failures resets the consecutive count."""
    breaker = _breaker(_Clock())
    _fail(breaker, 2)
    breaker.before_call()
    breaker.record_success()
    _fail(breaker, 2)
    assert breaker.state == CircuitState.CLOSED


def test_breaker_half_open_admits_one_probe() -> None:
    """After the cooldown exactly one probe is admitted; a second call is rejected."""
    clock = _Clock()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.now += 10.0
    assert breaker.state == CircuitState.HALF_OPEN
    breaker.before_call()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_breaker_probe_success_closes() -> None:
    """A successful probe closes the circuit."""
    clock = _Clock()
    changes: list[CircuitState] = []
    breaker = _breaker(clock, changes)
    _fail(breaker, 3)
    clock.now += 10.0
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == CircuitState.CLOSED
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_breaker_probe_failure_reopens_for_full_cooldown() -> None:
    """A failed probe reopens the circuit and restarts the cooldown."""
    clock = _Clock()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.now += 10.0
    _fail(breaker, 1)
    assert current_state(breaker) == CircuitState.OPEN
    clock.now += 9.9
    assert current_state(breaker) == CircuitState.OPEN
    clock.now += 0.1
    assert current_state(breaker) == CircuitState.HALF_OPEN


def test_breaker_ignored_outcome_frees_probe() -> None:
    """An ignored probe outcome lets the next call probe instead."""
    clock = _Clock()
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.now += 10.0
    probe = breaker.before_call()
    breaker.record_ignored(probe)
    second = breaker.before_call()
    breaker.record_success()
    assert probe
    assert second
    assert breaker.state == CircuitState.CLOSED


def test_breaker_earlier_call_keeps_probe_slot() -> None:
    """A call admitted while closed that ends ignored during a probe lets no second probe out."""
    clock = _Clock()
    breaker = _breaker(clock)
    early = breaker.before_call()
    _fail(breaker, 3)
    clock.now += 10.0
    probe = breaker.before_call()

    breaker.record_ignored(early)

    assert not early
    assert probe
    with pytest.raises(CircuitOpenError, match="circuit open"):
        breaker.before_call()
    breaker.record_success()
    assert not breaker.before_call()


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, 0.0)])
def test_breaker_policy_rejects_invalid(threshold: int, cooldown: float) -> None:
    """Non-positive thresholds and cooldowns are rejected."""
    with pytest.raises(ValueError, match="must be"):
        BreakerPolicy(threshold, cooldown)
