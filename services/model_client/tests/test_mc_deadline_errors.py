"""Tests of the error chosen for a model call whose deadline passed."""

from __future__ import annotations

import pytest
from evidence_model_client.deadline_errors import error_for_deadline
from evidence_model_client.errors import (
    ModelClientError,
    ModelOverloadedError,
    ModelTimeoutError,
)


@pytest.mark.parametrize(
    ("pool_wait", "expected", "pattern"),
    [
        (None, ModelOverloadedError, "no free connection to the model service within 100 ms"),
        (0.0, ModelTimeoutError, "exceeded its 100 ms deadline"),
        (0.049, ModelTimeoutError, "exceeded its 100 ms deadline"),
        (0.051, ModelOverloadedError, "waited 51 ms of its 100 ms deadline"),
        (0.09, ModelOverloadedError, "request timed out after the remaining 10 ms"),
    ],
)
def test_deadline_error_by_pool_wait(
    pool_wait: float | None, expected: type[ModelClientError], pattern: str
) -> None:
    """A wait that left the request less than half the deadline makes the timeout overload."""
    error = error_for_deadline(0.1, pool_wait, since_success_seconds=0.02)
    assert type(error) is expected
    assert pattern in str(error)
    assert error.counts_as_outage is (expected is ModelTimeoutError)


@pytest.mark.parametrize(
    ("since_success", "expected"),
    [
        (None, ModelTimeoutError),
        (0.0, ModelOverloadedError),
        (0.1, ModelOverloadedError),
        (0.101, ModelTimeoutError),
        (30.0, ModelTimeoutError),
    ],
)
def test_deadline_error_by_last_success(
    since_success: float | None, expected: type[ModelClientError]
) -> None:
    """A long pool wait is overload only while some call succeeded within the last deadline."""
    error = error_for_deadline(0.1, 0.09, since_success_seconds=since_success)
    assert type(error) is expected
