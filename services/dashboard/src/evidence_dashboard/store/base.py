"""The interface every store backend implements, and the frames it returns."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pandas as pd

from evidence_dashboard.store import schema

__all__ = [
    "FUTURE_TOLERANCE",
    "FeatureSample",
    "PolicyLookup",
    "PredictionStore",
    "QueryResult",
    "normalise_frame",
    "parse_feature_objects",
    "window_end",
]

FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of this clock a row's time may be and still count as in a time window.

A producer whose clock runs ahead writes rows dated in the future. Without an upper bound
such a row would fall inside every window until that date. The persistence worker's default
``PERSISTENCE_CLOCK_SKEW_TOLERANCE_SECONDS`` is the same 5 minutes."""


def window_end(now: datetime | None = None) -> datetime:
    """Return the latest row time that a time window includes: ``now`` plus the tolerance."""
    return (now or datetime.now(UTC)) + FUTURE_TOLERANCE


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of one panel query, newest first, with a flag set when ``max_rows`` cut them."""

    frame: pd.DataFrame
    truncated: bool


@dataclass(frozen=True, slots=True)
class FeatureSample:
    """Feature vectors for the drift panel, newest first, and the table they were read from.

    ``per_prediction`` is True when ``result`` has one row per prediction, read from
    ``MODEL_PREDICTIONS.FEATURES``. It is False when the predictions table has no ``FEATURES``
    column and ``result`` contains the latest row per policy from ``ONLINE_FEATURES`` instead.
    ``invalid`` counts stored values that were not JSON objects and were skipped.
    """

    result: QueryResult
    per_prediction: bool
    invalid: int = 0


@dataclass(frozen=True, slots=True)
class PolicyLookup:
    """Latest stored features of one policy (empty frame if none) and its predictions."""

    features: pd.DataFrame
    predictions: pd.DataFrame

    @property
    def found(self) -> bool:
        """Whether the store has anything for this policy number."""
        return not (self.features.empty and self.predictions.empty)


class PredictionStore(Protocol):
    """One query per dashboard panel; ``since=None`` means the whole table."""

    backend_name: str

    def count_predictions(self) -> int:
        """Count all rows of ``MODEL_PREDICTIONS``."""
        ...

    def traffic(self, since: datetime | None) -> QueryResult:
        """Return ``CREATED_AT``, ``SOURCE``, ``INFERENCE_MS`` of predictions since ``since``."""
        ...

    def model_usage(self, since: datetime | None) -> QueryResult:
        """Return the model, score and level columns of predictions since ``since``."""
        ...

    def feature_warnings(self, since: datetime | None) -> QueryResult:
        """Return ``CREATED_AT`` and the parsed ``WARNINGS`` list of predictions since ``since``."""
        ...

    def recent_features(self, since: datetime | None) -> QueryResult:
        """Return the 105 feature columns of policies updated since ``since``."""
        ...

    def drift_features(self, since: datetime | None, *, max_rows: int) -> FeatureSample:
        """Return the features of up to ``max_rows`` newest predictions since ``since``.

        They come from ``MODEL_PREDICTIONS.FEATURES``, or from ``recent_features`` when that
        column does not exist (tables created before it was added).
        """
        ...

    def lookup_policy(self, policy_number: str, *, limit: int = 50) -> PolicyLookup:
        """Return the latest features and up to ``limit`` newest predictions of one policy."""
        ...


def normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Upper-case the column names, parse timestamps as UTC and ``WARNINGS`` as lists."""
    frame = frame.rename(columns={column: str(column).upper() for column in frame.columns})
    for column in (schema.CREATED_AT, schema.UPDATED_AT):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    if schema.WARNINGS in frame.columns:
        frame[schema.WARNINGS] = frame[schema.WARNINGS].map(parse_warning_kinds)
    return frame


def parse_warning_kinds(raw: object) -> list[str]:
    """Parse a stored ``WARNINGS`` value (JSON array text, a list, or NULL) into kinds."""
    if raw is None or (isinstance(raw, float) and pd.isna(raw)):
        return []
    value: object = raw
    if isinstance(raw, str | bytes):
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text.strip():
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            # NOTE: a plain comma-separated string is accepted too, so a sink that joins the
            # kinds with commas still shows up in the warnings panel.
            return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return [str(value)]


def parse_feature_objects(values: Iterable[object]) -> tuple[pd.DataFrame, int]:
    """Turn stored ``FEATURES`` values into one float column per ``FEATURE_COLUMNS`` name.

    Each value is JSON object text (SQLite) or an already parsed dict. A key that an object
    lacks, such as a feature added after the prediction was stored, becomes NaN, and keys this
    feature spec does not know are ignored. Values that are not JSON objects are skipped.

    Returns:
        The frame, in input order, and the number of skipped values.
    """
    objects: list[dict[str, object]] = []
    invalid = 0
    for raw in values:
        value: object = raw
        if isinstance(raw, str | bytes):
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                value = None
        if isinstance(value, dict):
            objects.append(value)
        else:
            invalid += 1
    columns = list(schema.FEATURE_COLUMNS)
    frame = pd.DataFrame.from_records(objects, columns=columns)
    numeric = frame.apply(pd.to_numeric, errors="coerce").astype("float64")
    return numeric, invalid
