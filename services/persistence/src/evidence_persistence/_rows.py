"""Turn a batch of records into de-duplicated rows for the three tables.

Both sinks write by primary key, and Snowflake's MERGE rejects a source with two rows for one
key, so every batch is de-duplicated here first. A prediction id can occur more than once when
the queue delivers a record again or when a client replays a request whose prediction id is
deterministic, such as a retried service-function batch. Each record's ``created_at`` is the
time the gateway scored that attempt. Such a replay is not newer evidence, but its answer may be
the one the caller received:

- ``MODEL_PREDICTIONS``: ``CREATED_AT`` and ``PERSISTED_AT`` come from the record with the
  earliest ``created_at`` (the first scoring), on a tie the one enqueued first. Every other column
  comes from the record with the latest ``created_at`` (the answer), on a tie the one enqueued
  first, and ``ANSWERED_AT`` is that record's ``created_at``. Snowflake retries a batch only when
  it got no response, so the latest scoring is the answer it received. The sinks take the
  earlier ``CREATED_AT`` and the later ``ANSWERED_AT`` of the stored and the incoming row, each
  with its columns, so the row ends the same whatever order the records arrive in.
- ``RAW_EVIDENCE``: the first scoring, as for ``CREATED_AT``. The sinks replace a stored row
  only with a strictly earlier ``CREATED_AT``.
- ``ONLINE_FEATURES``: the record with the latest ``UPDATED_AT`` wins, on a tie the one enqueued
  last, and the sinks keep a stored row whose ``UPDATED_AT`` is newer. ``UPDATED_AT`` is the
  prediction's original scoring time: the earliest ``created_at`` of the id, in the batch or
  in the store, cut to ``max_updated_at`` when that is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from evidence_persistence._record import PredictionRecord
from evidence_persistence._tables import FEATURE_COLUMNS

__all__ = [
    "Row",
    "TableRows",
    "build_rows",
    "features_json",
    "future_cutoff",
    "stored_update_time",
]

_FEATURE_KEYS = tuple(column.name for column in FEATURE_COLUMNS)
# The FEATURES object is filled into a template made once from the keys. Because Python's repr
# of a finite float is a valid JSON number, the text equals json.dumps(..., separators=(",", ":"))
# (a test compares them), and a timeit run over 500 records was about 2.5 times faster. The keys
# are upper-case identifiers that need no escaping, which the check below confirms.
_FEATURES_TEMPLATE = "{" + ",".join(f"{json.dumps(key)}:%r" for key in _FEATURE_KEYS) + "}"
if any(json.dumps(key) != f'"{key}"' for key in _FEATURE_KEYS):  # pragma: no cover
    raise RuntimeError("a feature name needs JSON escaping; build FEATURES with json.dumps")

Value = str | float | datetime | None
Row = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows for each table, in each table's column order, with unique primary keys."""

    online_features: list[Row]
    model_predictions: list[Row]
    raw_evidence: list[Row]

    @property
    def total(self) -> int:
        """Number of rows across the three tables."""
        return len(self.online_features) + len(self.model_predictions) + len(self.raw_evidence)


def _keep(value: datetime) -> datetime:
    return value


def build_rows(
    records: Sequence[PredictionRecord],
    *,
    store_raw_evidence: bool,
    persisted_at: datetime | None = None,
    timestamp: Callable[[datetime], Value] = _keep,
    max_updated_at: datetime | None = None,
    stored_update_times: Mapping[str, datetime] | None = None,
) -> TableRows:
    """Build de-duplicated rows for a batch given in enqueue order.

    Args:
        records: The batch, oldest enqueued first.
        store_raw_evidence: Build ``RAW_EVIDENCE`` rows for records that carry XML.
        persisted_at: Value of ``PERSISTED_AT``; defaults to the current UTC time.
        timestamp: Converts each UTC timestamp to the sink's form; the default keeps it.
        max_updated_at: Latest ``ONLINE_FEATURES.UPDATED_AT`` to write, such as the worker's
            clock plus a tolerance. A record dated later, by a producer whose clock runs
            ahead, would otherwise keep every later record of its policy out of the table
            until that date. ``CREATED_AT`` keeps the record's own time. None cuts nothing.
        stored_update_times: For prediction ids that the store already holds, the
            ``UPDATED_AT`` derived from their stored ``MODEL_PREDICTIONS`` row (see
            ``stored_update_time``). A replay of such an id competes for ``ONLINE_FEATURES``
            with that time, not with its own later ``created_at``.
    """
    now = timestamp(persisted_at or datetime.now(UTC))
    stored = stored_update_times or {}
    first = _first_scored(records)
    answers = _latest_answers(records)
    latest_features: dict[str, tuple[datetime, PredictionRecord]] = {}
    for record in records:
        if first[record.prediction_id] is not record:
            continue
        updated_at = _updated_at(record, max_updated_at)
        # NOTE: a replay stored before its first scoring cannot know the first time yet, so
        # until that arrives its later time can keep a newer scoring of the policy out.
        stored_at = stored.get(record.prediction_id)
        if stored_at is not None and stored_at < updated_at:
            updated_at = stored_at
        current = latest_features.get(record.policy_number)
        if current is None or updated_at >= current[0]:
            latest_features[record.policy_number] = (updated_at, record)

    predictions = [
        _prediction_row(answers[prediction_id], record.created_at, now, timestamp)
        for prediction_id, record in first.items()
    ]
    features = [_feature_row(r, u, timestamp) for u, r in latest_features.values()]
    raw = []
    if store_raw_evidence:
        raw = [_raw_row(r, timestamp) for r in first.values() if r.has_raw_evidence]
    return TableRows(online_features=features, model_predictions=predictions, raw_evidence=raw)


def stored_update_time(
    created_at: datetime, persisted_at: datetime, clock_skew_tolerance_seconds: float
) -> datetime:
    """Return the ``UPDATED_AT`` that a stored prediction's features were written with.

    That is its ``CREATED_AT`` cut to ``PERSISTED_AT`` plus the tolerance, as ``build_rows``
    cut it with ``future_cutoff`` when the row was first written. Both timestamps are UTC.
    """
    return min(created_at, future_cutoff(clock_skew_tolerance_seconds, persisted_at))


def future_cutoff(tolerance_seconds: float, now: datetime | None = None) -> datetime:
    """Return the latest ``created_at`` not taken as future-dated: ``now`` plus the tolerance."""
    return (now or datetime.now(UTC)) + timedelta(seconds=tolerance_seconds)


def _first_scored(records: Sequence[PredictionRecord]) -> dict[str, PredictionRecord]:
    """Map each prediction id to its record with the earliest ``created_at``.

    On a tie the record enqueued first is kept. The map is in order of each id's first
    appearance.
    """
    first: dict[str, PredictionRecord] = {}
    for record in records:
        earliest = first.get(record.prediction_id)
        if earliest is None or record.created_at < earliest.created_at:
            first[record.prediction_id] = record
    return first


def _latest_answers(records: Sequence[PredictionRecord]) -> dict[str, PredictionRecord]:
    """Map each prediction id to its record with the latest ``created_at``.

    On a tie the record enqueued first is kept, as a stored row is kept against an incoming one
    with the same ``ANSWERED_AT``.

    NOTE: the order follows the gateways' clocks. A retry scored on an instance whose clock runs
    behind the first attempt's by more than the time between the attempts loses to it.
    """
    latest: dict[str, PredictionRecord] = {}
    for record in records:
        current = latest.get(record.prediction_id)
        if current is None or record.created_at > current.created_at:
            latest[record.prediction_id] = record
    return latest


def _updated_at(record: PredictionRecord, max_updated_at: datetime | None) -> datetime:
    if max_updated_at is None or record.created_at <= max_updated_at:
        return record.created_at
    return max_updated_at


def _feature_row(
    record: PredictionRecord, updated_at: datetime, timestamp: Callable[[datetime], Value]
) -> Row:
    row: Row = (
        record.policy_number,
        *record.features,
        record.feature_spec_version,
        record.prediction_id,
        timestamp(updated_at),
    )
    return row


def _prediction_row(
    answer: PredictionRecord,
    created_at: datetime,
    persisted_at: Value,
    timestamp: Callable[[datetime], Value],
) -> Row:
    """Build a ``MODEL_PREDICTIONS`` row of the ``answer`` record and the first scoring time."""
    row: Row = (
        answer.prediction_id,
        answer.policy_number,
        answer.risk_score,
        answer.risk_level,
        answer.model_name,
        answer.model_version,
        answer.feature_spec_version,
        answer.source,
        answer.inference_ms,
        answer.fallback_reason,
        json.dumps(list(answer.warnings)),
        timestamp(created_at),
        persisted_at,
        features_json(answer),
        timestamp(answer.created_at),
    )
    return row


def features_json(record: PredictionRecord) -> str:
    """Encode the record's features as the ``FEATURES`` JSON object {FEATURE_NAME: value}.

    Keys are the ``ONLINE_FEATURES`` column names, in ``FEATURE_NAMES`` order. Each value is
    written as Python's shortest repr that parses back to the same float64, so ``json.loads``
    returns every value bit for bit.

    Raises:
        ValueError: A feature is NaN or infinite, which JSON cannot represent. The message
            names the prediction and the feature.
    """
    if not all(map(math.isfinite, record.features)):
        key = next(
            key
            for key, value in zip(_FEATURE_KEYS, record.features, strict=True)
            if not math.isfinite(value)
        )
        msg = (
            f"feature {key} of prediction {record.prediction_id!r} is NaN or infinite; the "
            "FEATURES column stores finite numbers only, so fix the value before the record "
            "is queued"
        )
        raise ValueError(msg)
    return _FEATURES_TEMPLATE % record.features


def _raw_row(record: PredictionRecord, timestamp: Callable[[datetime], Value]) -> Row:
    # NOTE: documents that are not UTF-8 lose their undecodable bytes (replaced by U+FFFD)
    # because both stores keep the XML as text.
    row: Row = (
        record.prediction_id,
        record.policy_number,
        _text(record.mib_xml),
        _text(record.rx_xml),
        timestamp(record.created_at),
    )
    return row


def _text(document: bytes | None) -> str | None:
    return None if document is None else document.decode("utf-8", errors="replace")
