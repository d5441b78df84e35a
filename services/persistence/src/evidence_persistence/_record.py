"""The prediction record that the gateway appends and the worker writes to the tables.

A record is encoded for the queue as two parts: a compact JSON object with the scalar fields and
the 105 feature values as little-endian float64 bytes (840 bytes). Packing the floats as bytes is
about ten times faster than writing them as JSON text and round-trips every value exactly.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from evidence_persistence._validation import (
    FEATURE_COUNT,
    check_created_at,
    check_document,
    check_features,
    check_inference_ms,
    check_optional_text,
    check_risk_score,
    check_source,
    check_text,
    check_warnings,
)
from evidence_persistence.errors import RecordDecodeError

__all__ = ["EncodedRecord", "PredictionRecord", "Source", "decode_record", "encode_record"]

Source = Literal["API", "SQL"]

MAX_ID_LENGTH = 128
MAX_POLICY_NUMBER_LENGTH = 64
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
        created_at: Time the gateway scored this attempt; must be timezone-aware and is
            converted to UTC. Of the records of one prediction id, the worker stores the
            earliest as ``CREATED_AT`` and the latest as ``ANSWERED_AT``.
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
        check_text("prediction_id", self.prediction_id, MAX_ID_LENGTH)
        check_text("policy_number", self.policy_number, MAX_POLICY_NUMBER_LENGTH)
        check_text("feature_spec_version", self.feature_spec_version)
        check_text("risk_level", self.risk_level)
        check_text("model_name", self.model_name)
        check_text("model_version", self.model_version)
        check_source(self.source)
        check_optional_text("fallback_reason", self.fallback_reason)
        # These checks also return the stored form: floats, tuples, UTC and bytes.
        set_field = object.__setattr__
        set_field(self, "features", check_features(self.features))
        set_field(self, "risk_score", check_risk_score(self.risk_score))
        set_field(self, "inference_ms", check_inference_ms(self.inference_ms))
        set_field(self, "created_at", check_created_at(self.created_at))
        set_field(self, "warnings", check_warnings(self.warnings))
        set_field(self, "mib_xml", check_document("mib_xml", self.mib_xml))
        set_field(self, "rx_xml", check_document("rx_xml", self.rx_xml))

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


# Payload keys of encode_record, with the field each one holds.
_PAYLOAD_FIELDS = {
    "p": "policy_number",
    "v": "feature_spec_version",
    "s": "risk_score",
    "l": "risk_level",
    "mn": "model_name",
    "mv": "model_version",
    "src": "source",
    "ms": "inference_ms",
    "t": "created_at",
    "fr": "fallback_reason",
    "w": "warnings",
}


def decode_record(
    prediction_id: str,
    payload: bytes,
    features: bytes,
    mib_xml: bytes | None = None,
    rx_xml: bytes | None = None,
) -> PredictionRecord:
    """Decode the queue's columns back into a record, checked like a new one.

    A queue row can differ from what ``encode_record`` wrote: an older version may have queued
    it, a tool may have edited the file, or the file may be damaged. The rebuilt record runs
    the same checks as one built by a caller, so a bad row fails here instead of in the sink.

    Raises:
        RecordDecodeError: The row cannot be decoded or a field is invalid. The message names
            the field and the problem, never a value. Any exception from decoding, such as a
            ``RecursionError`` on deeply nested JSON, is raised as this error.
    """
    try:
        fields = _decode_fields(payload, features)
        return PredictionRecord(
            prediction_id=prediction_id, mib_xml=mib_xml, rx_xml=rx_xml, **fields
        )
    except RecursionError:
        problem = "RecursionError: the payload's JSON is nested too deeply"
    except UnicodeDecodeError as exc:
        # The codec's message quotes the offending bytes.
        problem = f"UnicodeDecodeError: the payload is not valid UTF-8 (at byte {exc.start})"
    except json.JSONDecodeError as exc:
        # exc.msg describes the syntax error without quoting the document.
        problem = f"JSONDecodeError: the payload is not valid JSON ({exc.msg} at byte {exc.pos})"
    except (TypeError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # one bad row must not stop the worker
        problem = f"{type(exc).__name__} while decoding the row"
    # The id is shortened because an over-long id is itself one of the faults reported here.
    name = repr(prediction_id[:MAX_ID_LENGTH]) if isinstance(prediction_id, str) else "with an id"
    msg = f"queued record {name} cannot be decoded: {problem}"
    raise RecordDecodeError(msg)


def _decode_fields(payload: bytes, features: object) -> dict[str, Any]:
    """Return the constructor arguments held in a row's payload and features columns.

    Raises:
        TypeError: The payload is not a JSON object or a column has the wrong type.
        ValueError: A field is missing, or the features are not 105 float64 values. The
            message names the field, never its value.
    """
    scalars: object = json.loads(payload)
    if not isinstance(scalars, dict):
        msg = f"payload must be a JSON object, got {type(scalars).__name__}"
        raise TypeError(msg)
    if not isinstance(features, bytes):
        msg = f"features column must hold bytes, got {type(features).__name__}"
        raise TypeError(msg)
    if len(features) != FEATURE_COUNT * 8:
        msg = (
            f"features column holds {len(features)} bytes; expected {FEATURE_COUNT} "
            f"little-endian float64 values ({FEATURE_COUNT * 8} bytes)"
        )
        raise ValueError(msg)
    values = array("d")
    values.frombytes(features)
    if _BIG_ENDIAN:  # pragma: no cover - NOTE: see encode_record
        values.byteswap()
    try:
        fields = {name: scalars[key] for key, name in _PAYLOAD_FIELDS.items()}
    except KeyError:
        missing = [name for key, name in _PAYLOAD_FIELDS.items() if key not in scalars]
        msg = f"payload lacks the fields {', '.join(missing)}"
        raise ValueError(msg) from None
    fields["features"] = values
    created_at = fields["created_at"]
    if not isinstance(created_at, str):
        msg = f"created_at must be an ISO 8601 string, got {type(created_at).__name__}"
        raise TypeError(msg)
    try:
        fields["created_at"] = datetime.fromisoformat(created_at)
    except ValueError:
        # fromisoformat's message quotes the text.
        msg = "created_at is not an ISO 8601 timestamp"
        raise ValueError(msg) from None
    return fields


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
