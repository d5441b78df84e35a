"""When ``RiskScorer`` splits a model call that the service rejected, and when it stops.

A rejection of a call of several rows with 400, 413 or 422 may come from some rows only, so
the scorer sends the two halves of the call. The statuses differ in what a rejection of both
halves means:

- 413 (too many rows, or a body over the size limit) means the call was too large, not that a
  row is bad. A half rejected with 413 is always split again, until a part is accepted or a
  part of one row is still rejected.
- 400 and 422 reject the content of the body. When both halves are rejected for their content,
  the cause is probably not one row but several bad rows or a service that rejects every call,
  so neither half is split further.

Each split turns a part into two smaller ones, and no part is empty, so the calls form a binary
tree with at most n leaves: at most 2n - 1 calls for n rows, the first one included.
"""

from __future__ import annotations

from typing import TypeGuard

import numpy as np

from evidence_model_client.errors import ModelClientError, ModelRequestRejectedError

__all__ = ["TOO_LARGE_STATUS", "is_splittable", "should_split_half"]

#: The status of a call that was too large: too many rows or too many bytes.
TOO_LARGE_STATUS = 413
# Rejections that may come from some rows of the call, so that its halves may succeed.
_SPLITTABLE_STATUSES = frozenset({400, TOO_LARGE_STATUS, 422})

Outcome = np.ndarray | ModelClientError


def is_splittable(outcome: Outcome, values: np.ndarray) -> TypeGuard[ModelRequestRejectedError]:
    """Return whether a call of ``values`` was rejected in a way that its halves may avoid."""
    return (
        isinstance(outcome, ModelRequestRejectedError)
        and outcome.status in _SPLITTABLE_STATUSES
        and len(values) > 1
    )


def should_split_half(outcome: Outcome, values: np.ndarray, sibling: Outcome) -> bool:
    """Return whether to split a half of a rejected call, given the outcome of the other half.

    A half rejected with 413 is split regardless of its sibling. A half rejected with 400 or
    422 is split only when its sibling was not rejected for its content as well. A 413 of the
    sibling does not count, because it comes from the size of the call.
    """
    if not is_splittable(outcome, values):
        return False
    if outcome.status == TOO_LARGE_STATUS:
        return True
    return not _rejected_for_content(sibling)


def _rejected_for_content(outcome: Outcome) -> bool:
    return isinstance(outcome, ModelRequestRejectedError) and outcome.status != TOO_LARGE_STATUS
