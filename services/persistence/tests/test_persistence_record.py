"""Tests of PredictionRecord validation and its queue encoding."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from evidence_persistence import PredictionRecord, RecordDecodeError
from evidence_persistence._record import decode_record, encode_record
from persistence_testkit import BASE_TIME, build_features, build_record


def test_record_round_trip_is_exact() -> None:
    """Encoding then decoding returns an equal record, feature floats bit for bit."""
    record = build_record(
        7,
        features=(math.pi, -1.0, 1e-300, *build_features(7)[3:]),
        fallback_reason="model timed out",
        warnings=("unknown_drug", "undated_record"),
        mib_xml=b"<MIBResponse/>",
        rx_xml="<IntelRXResponse/>",
    )
    encoded = encode_record(record)
    decoded = decode_record(
        encoded.prediction_id, encoded.payload, encoded.features, encoded.mib_xml, encoded.rx_xml
    )
    assert record == decoded
    assert math.pi == decoded.features[0]
    assert decoded.rx_xml == b"<IntelRXResponse/>"


def test_record_features_are_packed_as_840_bytes() -> None:
    """The 105 features take 8 bytes each; the JSON part has no feature values."""
    encoded = encode_record(build_record(1))
    assert len(encoded.features) == 105 * 8
    assert b"0.0009765625" not in encoded.payload


def test_record_accepts_numpy_vector() -> None:
    """A float64 numpy array becomes a tuple of Python floats."""
    record = build_record(1, features=np.arange(105, dtype=np.float64))
    assert isinstance(record.features, tuple)
    assert record.features[-1] == 104.0
    assert float is type(record.features[0])


def test_record_converts_created_at_to_utc() -> None:
    """An aware datetime in another zone is stored in UTC."""
    local = datetime(2026, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    record = build_record(1, created_at=local)
    assert timedelta(0) == record.created_at.utcoffset()
    assert record.created_at.hour == 3


@pytest.mark.parametrize("count", [0, 1, 104, 106])
def test_record_wrong_feature_count_rejected(count: int) -> None:
    """A vector that is not 105 long raises ValueError naming the count."""
    with pytest.raises(ValueError, match=f"features has {count} values; expected 105"):
        build_record(1, features=(0.0,) * count)


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("prediction_id", "", "prediction_id='' must be a non-empty string"),
        ("prediction_id", "x" * 129, "the maximum is 128"),
        ("policy_number", "P" * 65, "the maximum is 64"),
        ("policy_number", 12, "policy_number=12 must be a non-empty string"),
        ("risk_score", 1.5, r"risk_score=1.5 is outside \[0, 1\]"),
        ("risk_score", float("nan"), "risk_score=nan is outside"),
        ("inference_ms", -1.0, "inference_ms=-1.0 must be a finite number"),
        ("inference_ms", float("inf"), "inference_ms=inf must be a finite number"),
        ("source", "HTTP", "source='HTTP' is invalid; use 'API' or 'SQL'"),
        ("created_at", datetime(2026, 1, 1), "naive datetime"),
    ],
)
def test_record_invalid_field_rejected(field: str, value: object, pattern: str) -> None:
    """Each invalid field raises ValueError with a message naming the field."""
    with pytest.raises(ValueError, match=pattern):
        build_record(1, **{field: value})


def test_record_created_at_not_datetime_rejected() -> None:
    """A created_at string raises TypeError."""
    with pytest.raises(TypeError, match="created_at must be a datetime, got str"):
        build_record(1, created_at="2026-01-01T00:00:00+00:00")


def test_record_has_raw_evidence() -> None:
    """has_raw_evidence is true when either document is present."""
    assert not build_record(1).has_raw_evidence
    assert build_record(1, rx_xml=b"<x/>").has_raw_evidence


def test_decode_corrupt_payload_raises() -> None:
    """A payload that is not the JSON written by encode_record raises RecordDecodeError."""
    encoded = encode_record(build_record(1))
    with pytest.raises(RecordDecodeError, match="queued record 'pred-1' cannot be decoded"):
        decode_record("pred-1", b"{not json", encoded.features)
    with pytest.raises(RecordDecodeError, match="features has 104 values"):
        decode_record("pred-1", encoded.payload, encoded.features[:-8])


def test_record_is_frozen() -> None:
    """Records cannot be changed after construction."""
    record: PredictionRecord = build_record(1)
    with pytest.raises(AttributeError):
        record.risk_score = 0.9  # type: ignore[misc]
    assert BASE_TIME + timedelta(seconds=1) == record.created_at
