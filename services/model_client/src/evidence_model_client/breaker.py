"""A consecutive-failure circuit breaker for calls made from one asyncio event loop.

States and transitions::

    CLOSED    --N consecutive failures-->  OPEN
    OPEN      --cooldown elapsed, next call-->  HALF_OPEN (that call is the single probe)
    HALF_OPEN --probe succeeds-->  CLOSED
    HALF_OPEN --probe fails-->     OPEN (cooldown starts again)

While OPEN, and while a HALF_OPEN probe is in flight, calls are rejected at once with
``CircuitOpenError``.

The breaker is written here rather than taken from a library. pybreaker (1.4) guards async code
only through Tornado coroutines. Its asyncio forks (aiobreaker, asyncbreaker) and purgatory are
small single-maintainer projects, and this state machine is short and tested with a fake clock.
It uses no lock, because all transitions run synchronously on the event loop, between awaits.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from evidence_model_client.errors import CircuitOpenError

__all__ = ["BreakerPolicy", "CircuitBreaker", "CircuitState"]


class CircuitState(enum.Enum):
    """Breaker state; the value is the number exported by the circuit-state gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the circuit opens (``failure_threshold`` failures in a row) and for how long."""

    failure_threshold: int = 5
    cooldown_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            msg = f"failure_threshold must be >= 1, got {self.failure_threshold!r}"
            raise ValueError(msg)
        if self.cooldown_seconds <= 0:
            msg = f"cooldown_seconds must be > 0, got {self.cooldown_seconds!r}"
            raise ValueError(msg)


class CircuitBreaker:
    """Track consecutive failures and decide whether the next call may go out.

    Usage: call ``before_call()`` (raises ``CircuitOpenError`` when the call must not be sent),
    then exactly one of ``record_success()`` or ``record_failure()``, or
    ``record_ignored(probe)`` for an outcome that gives no information about the service (such
    as local pool overload), passing on what ``before_call()`` returned.
    """

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The current state, after moving OPEN to HALF_OPEN if the cooldown has elapsed."""
        if self._state is CircuitState.OPEN and self._cooldown_elapsed():
            return CircuitState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success."""
        return self._failures

    def before_call(self) -> bool:
        """Admit a call or reject it.

        Returns:
            True when the call is the half-open probe, False for a call of a closed circuit.

        Raises:
            CircuitOpenError: the circuit is open, or a half-open probe is already in flight.
        """
        if self._state is CircuitState.CLOSED:
            return False
        if self._state is CircuitState.OPEN and self._cooldown_elapsed():
            self._set_state(CircuitState.HALF_OPEN)
        if self._state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        remaining = max(0.0, self._opened_at + self.policy.cooldown_seconds - self._clock())
        msg = (
            f"circuit open after {self._failures} consecutive model failures; "
            f"next probe in {remaining:.2f} s"
        )
        raise CircuitOpenError(msg)

    def record_success(self) -> None:
        """Close the circuit and reset the failure count."""
        self._failures = 0
        self._probe_in_flight = False
        self._set_state(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """Count a failure; open the circuit at the threshold or when a probe fails."""
        self._failures += 1
        self._probe_in_flight = False
        if self._state is CircuitState.HALF_OPEN or self._failures >= self.policy.failure_threshold:
            self._opened_at = self._clock()
            self._set_state(CircuitState.OPEN)

    def record_ignored(self, probe: bool) -> None:
        """End a call whose outcome neither opens nor closes the circuit.

        Args:
            probe: What ``before_call()`` returned for the call. Only the probe frees the
                half-open slot: a call admitted while the circuit was still closed may end
                during a probe, and freeing the slot then would let a second probe out.
        """
        if probe:
            self._probe_in_flight = False

    def _cooldown_elapsed(self) -> bool:
        return self._clock() - self._opened_at >= self.policy.cooldown_seconds

    def _set_state(self, state: CircuitState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
