"""The prediction record that the gateway appends and the worker writes to the tables.

A record is encoded for the queue as two parts: a compact JSON object with the scalar fields and
the 105 feature values as little-endian float64 bytes (840 bytes). Packing the floats as bytes is
about ten times faster than writing them as JSON text and round-trips every value exactly.
"""

from __future__ import annotations

import json
import math
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from evidence_features import FEATURE_NAMES

from evidence_persistence.errors import RecordDecodeError

__all__ = ["EncodedRecord", "PredictionRecord", "Source", "decode_record", "encode_record"]

Source = Literal["API", "SQL"]

FEATURE_COUNT = len(FEATURE_NAMES)
MAX_ID_LENGTH = 128
MAX_POLICY_NUMBER_LENGTH = 64
_SOURCES = frozenset(("API", "SQL"))
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One scored prediction with everything the three tables need.

    Args:
        prediction_id: Primary key of ``MODEL_PREDICTIONS``; at most 128 characters. A record
            appended twice with the same id leaves one row.
        policy_number: Applicant policy number; at most 64 characters, stored as data.
        features: The 105 finite feature values in ``FEATURE_NAMES`` order (any float
            sequence, including a numpy array; stored as a tuple of floats).
        feature_spec_version: ``FEATURE_SPEC_VERSION`` the features were computed with.
        risk_score: Positive-class probability in [0, 1].
        risk_level: Level label derived from the score, such as ``"LOW"``.
        model_name: Registry model name, such as ``"EVIDENCE_RISK_MODEL"``.
        model_version: ``"REGISTRY_<VERSION>"`` or ``"RULE_BASED"``.
        source: ``"API"`` for the JSON API, ``"SQL"`` for the Snowflake service function.
        inference_ms: Time the gateway spent on the prediction, in milliseconds.
        created_at: Time of the prediction; must be timezone-aware and is converted to UTC.
        fallback_reason: Why the rule-based fallback produced the score, or ``None``.
        warnings: Feature-extraction warning kinds (no drug names or codes).
        mib_xml: Raw MIB report, set only when raw evidence storage is enabled.
        rx_xml: Raw Rx report, set only when raw evidence storage is enabled.

    Raises:
        ValueError: A field is out of range, or a feature is NaN or infinite; the message
            names the field.
        TypeError: ``created_at`` is not a ``datetime``.
    """

    prediction_id: str
    policy_number: str
    features: tuple[float, ...]
    feature_spec_version: str
    risk_score: float
    risk_level: str
    model_name: str
    model_version: str
    source: Source
    inference_ms: float
    created_at: datetime
    fallback_reason: str | None = None
    warnings: tuple[str, ...] = field(default=())
    mib_xml: bytes | None = None
    rx_xml: bytes | None = None

    def __post_init__(self) -> None:
        _check_text("prediction_id", self.prediction_id, MAX_ID_LENGTH)
        _check_text("policy_number", self.policy_number, MAX_POLICY_NUMBER_LENGTH)
        features = tuple(map(float, self.features))
        if len(features) != FEATURE_COUNT:
            msg = (
                f"features has {len(features)} values; expected {FEATURE_COUNT} "
                "in FEATURE_NAMES order"
            )
            raise ValueError(msg)
        if not all(map(math.isfinite, features)):
            index = next(i for i, value in enumerate(features) if not math.isfinite(value))
            msg = (
                f"features[{index}] ({FEATURE_NAMES[index]}) is {features[index]!r}; every "
                "feature must be a finite number because the tables store it as FLOAT and JSON"
            )
            raise ValueError(msg)
        object.__setattr__(self, "features", features)

        if not 0.0 <= self.risk_score <= 1.0:
            msg = f"risk_score={self.risk_score!r} is outside [0, 1]"
            raise ValueError(msg)
        if not (self.inference_ms >= 0.0 and math.isfinite(self.inference_ms)):
            msg = f"inference_ms={self.inference_ms!r} must be a finite number >= 0"
            raise ValueError(msg)
        if self.source not in _SOURCES:
            msg = f"source={self.source!r} is invalid; use 'API' or 'SQL'"
            raise ValueError(msg)

        created_at: object = self.created_at
        if not isinstance(created_at, datetime):
            msg = f"created_at must be a datetime, got {type(created_at).__name__}"
            raise TypeError(msg)
        if self.created_at.utcoffset() is None:
            msg = "created_at is a naive datetime; pass a timezone-aware UTC datetime"
            raise ValueError(msg)
        object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))

        object.__setattr__(self, "warnings", tuple(self.warnings))
        for name in ("mib_xml", "rx_xml"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, value.encode("utf-8"))

    @property
    def has_raw_evidence(self) -> bool:
        """Whether the record carries at least one raw XML document."""
        return self.mib_xml is not None or self.rx_xml is not None


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """The queue's storage form of one record: the columns of one queue row."""

    prediction_id: str
    payload: bytes
    features: bytes
    mib_xml: bytes | None
    rx_xml: bytes | None


def _check_text(name: str, value: object, max_length: int) -> None:
    if not isinstance(value, str) or not value:
        msg = f"{name}={value!r} must be a non-empty string"
        raise ValueError(msg)
    if len(value) > max_length:
        msg = f"{name}={value[:40]!r}... has {len(value)} characters; the maximum is {max_length}"
        raise ValueError(msg)


def encode_record(record: PredictionRecord) -> EncodedRecord:
    """Encode a record into the queue's columns."""
    scalars = {
        "p": record.policy_number,
        "v": record.feature_spec_version,
        "s": record.risk_score,
        "l": record.risk_level,
        "mn": record.model_name,
        "mv": record.model_version,
        "src": record.source,
        "ms": record.inference_ms,
        "t": record.created_at.isoformat(),
        "fr": record.fallback_reason,
        "w": record.warnings,
    }
    payload = json.dumps(scalars, separators=(",", ":"), allow_nan=False).encode("utf-8")
    values = array("d", record.features)
    if _BIG_ENDIAN:  # pragma: no cover - NOTE: the stored form is little-endian everywhere
        values.byteswap()
    return EncodedRecord(
        prediction_id=record.prediction_id,
        payload=payload,
        features=values.tobytes(),
        mib_xml=record.mib_xml,
        rx_xml=record.rx_xml,
    )


def decode_record(
    prediction_id: str,
    payload: bytes,
    features: bytes,
    mib_xml: bytes | None = None,
    rx_xml: bytes | None = None,
) -> PredictionRecord:
    """Decode the queue's columns back into a record.

    The fields were validated when the record was built, so decoding checks only what the
    storage could have broken (JSON, feature count, timestamp) and skips ``__post_init__``,
    which would otherwise take a sixth of the worker's time.

    Raises:
        RecordDecodeError: The payload is not valid JSON, misses a field or has the wrong
            number of feature values.
    """
    try:
        scalars: dict[str, Any] = json.loads(payload)
        values = array("d")
        values.frombytes(features)
        if _BIG_ENDIAN:  # pragma: no cover - NOTE: see encode_record
            values.byteswap()
        if len(values) != FEATURE_COUNT:
            msg = f"features has {len(values)} values; expected {FEATURE_COUNT}"
            raise ValueError(msg)
        fields = {
            "prediction_id": prediction_id,
            "policy_number": scalars["p"],
            "features": tuple(values),
            "feature_spec_version": scalars["v"],
            "risk_score": scalars["s"],
            "risk_level": scalars["l"],
            "model_name": scalars["mn"],
            "model_version": scalars["mv"],
            "source": scalars["src"],
            "inference_ms": scalars["ms"],
            "created_at": datetime.fromisoformat(scalars["t"]),
            "fallback_reason": scalars["fr"],
            "warnings": tuple(scalars["w"]),
            "mib_xml": mib_xml,
            "rx_xml": rx_xml,
        }
    except (ValueError, TypeError, KeyError) as exc:
        msg = f"queued record {prediction_id!r} cannot be decoded: {exc}"
        raise RecordDecodeError(msg) from exc
    record = object.__new__(PredictionRecord)
    for name, value in fields.items():
        object.__setattr__(record, name, value)
    return record


def as_records(records: Iterable[PredictionRecord]) -> list[PredictionRecord]:
    """Return the records as a list, checking that each one is a ``PredictionRecord``."""
    items: list[object] = list(records)
    checked: list[PredictionRecord] = []
    for item in items:
        if not isinstance(item, PredictionRecord):
            msg = f"expected PredictionRecord, got {type(item).__name__}"
            raise TypeError(msg)
        checked.append(item)
    return checked
