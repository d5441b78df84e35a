"""Prediction ids: random for the JSON API, derived from the batch for service functions."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence

__all__ = ["PREDICTION_ID_NAMESPACE", "new_prediction_id", "service_function_prediction_id"]

# NOTE: changing this namespace changes every service-function prediction id, so a batch retried
# across a deployment would be written twice. Keep it fixed.
PREDICTION_ID_NAMESPACE = uuid.UUID("0b0f6b6e-3c55-4d4b-9a57-6a0e5f2d7c11")


def new_prediction_id() -> str:
    """Return a random prediction id for a request that has no idempotency key."""
    return str(uuid.uuid4())


def service_function_prediction_id(
    query_batch_id: str, row: int, arguments: Sequence[object]
) -> str:
    """Derive the prediction id of one service-function row.

    Snowflake keeps ``sf-external-function-query-batch-id`` stable across retries of a batch,
    so a replayed batch maps each row to the same id and the sink's upsert writes it once. The
    row's arguments are part of the id, so a client that reuses a batch id for other content
    gets new ids instead of overwriting predictions already acknowledged.
    """
    content = json.dumps(list(arguments), ensure_ascii=False, default=str)
    digest = hashlib.sha256(content.encode("utf-8", errors="surrogatepass")).hexdigest()
    return str(uuid.uuid5(PREDICTION_ID_NAMESPACE, f"{query_batch_id}:{row}:{digest}"))
