"""The error for a model call whose deadline passed, chosen by where the time went.

The deadline of a call covers the wait for a pooled connection and the request. In a burst,
the calls queued behind a full pool get their connection with little time left, so their
request can time out although the service responds in its usual time. A call whose pool wait
left the request less than ``MIN_REQUEST_SHARE`` of the deadline, and that then timed out,
therefore raises ``ModelOverloadedError``. The circuit breaker ignores that error, so a burst
against a healthy but busy service does not open the circuit. A call that had more time for
the request and still timed out raises ``ModelTimeoutError``, which the breaker counts.

A long pool wait alone does not tell a busy service from a hung one. Once a hung service has
filled the pool, every later call gets its connection only when an earlier call's deadline
runs out, so each of them has waited more than half its deadline. A timeout therefore counts
as overload only while the service is still responding, that is when some call succeeded
within the last deadline. A service that responds to nothing for a whole deadline opens the
circuit however full the pool is.
"""

from __future__ import annotations

from evidence_model_client.errors import (
    ModelClientError,
    ModelOverloadedError,
    ModelTimeoutError,
)

__all__ = ["MIN_REQUEST_SHARE", "error_for_deadline"]

#: Smallest share of the deadline that the pool wait must leave for the request, for a timeout
#: of that request to count as the service's failure. At one half, a service that needs more
#: than half the deadline still opens the circuit through the calls that got a connection at once.
MIN_REQUEST_SHARE = 0.5


def error_for_deadline(
    deadline_seconds: float,
    pool_wait_seconds: float | None,
    since_success_seconds: float | None = None,
) -> ModelClientError:
    """Return the error for a call whose deadline passed (the caller chains it with ``from``).

    Args:
        deadline_seconds: the call's total deadline.
        pool_wait_seconds: how long the call waited for a pooled connection, or None when it
            got none before the deadline.
        since_success_seconds: time since the client's last successful call ended, or None
            when no call has succeeded yet.
    """
    deadline_ms = deadline_seconds * 1000
    if pool_wait_seconds is None:
        msg = f"no free connection to the model service within {deadline_ms:.0f} ms"
        return ModelOverloadedError(msg)
    request_seconds = deadline_seconds - pool_wait_seconds
    still_answering = (
        since_success_seconds is not None and since_success_seconds <= deadline_seconds
    )
    if still_answering and request_seconds < deadline_seconds * MIN_REQUEST_SHARE:
        msg = (
            f"model call waited {pool_wait_seconds * 1000:.0f} ms of its {deadline_ms:.0f} ms "
            f"deadline for a pooled connection, then its request timed out after the remaining "
            f"{request_seconds * 1000:.0f} ms; raise MODEL_CLIENT_MAX_CONNECTIONS or "
            "MODEL_CLIENT_DEADLINE_MS if calls often wait this long"
        )
        return ModelOverloadedError(msg)
    return ModelTimeoutError(f"model call exceeded its {deadline_ms:.0f} ms deadline")
