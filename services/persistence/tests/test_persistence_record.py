"""Tests of PredictionRecord validation and its queue encoding."""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime, timedelta, timezone

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
    ("field", "value", "message"),
    [
        ("prediction_id", "", "prediction_id is an empty string; pass a non-empty string"),
        ("prediction_id", "x" * 129, "prediction_id has 129 characters; the maximum is 128"),
        ("policy_number", "P" * 65, "policy_number has 65 characters; the maximum is 64"),
        ("policy_number", "P" * 5000, "policy_number has 5000 characters; the maximum is 64"),
        (
            "feature_spec_version",
            "",
            "feature_spec_version is an empty string; pass a non-empty string",
        ),
        ("risk_level", "", "risk_level is an empty string; pass a non-empty string"),
        ("model_name", "", "model_name is an empty string; pass a non-empty string"),
        ("model_version", "", "model_version is an empty string; pass a non-empty string"),
        ("fallback_reason", "", "fallback_reason is an empty string; pass a non-empty string"),
        ("risk_score", 1.5, "risk_score is outside [0, 1]; pass the model's probability in [0, 1]"),
        ("risk_score", 5.0, "risk_score is outside [0, 1]; pass the model's probability in [0, 1]"),
        (
            "risk_score",
            -0.1,
            "risk_score is outside [0, 1]; pass the model's probability in [0, 1]",
        ),
        ("risk_score", float("nan"), "risk_score is NaN; pass the model's probability in [0, 1]"),
        ("risk_score", 10**400, "risk_score is too large for a float64"),
        (
            "inference_ms",
            -1.0,
            "inference_ms is negative, NaN or infinite; pass the elapsed milliseconds",
        ),
        (
            "inference_ms",
            float("inf"),
            "inference_ms is negative, NaN or infinite; pass the elapsed milliseconds",
        ),
        (
            "inference_ms",
            float("nan"),
            "inference_ms is negative, NaN or infinite; pass the elapsed milliseconds",
        ),
        ("source", "HTTP", "source is invalid; use 'API' or 'SQL'"),
        ("source", "EVIL", "source is invalid; use 'API' or 'SQL'"),
        (
            "created_at",
            datetime(2026, 1, 1),
            "created_at is a naive datetime; pass a timezone-aware UTC datetime",
        ),
        (
            "mib_xml",
            "<a>\ud800</a>",
            "mib_xml contains a lone surrogate at index 3; pass valid Unicode",
        ),
    ],
)
def test_record_invalid_value_rejected(field: str, value: object, message: str) -> None:
    """Each value out of range raises ValueError naming the field, without the value."""
    with pytest.raises(ValueError, match=f"^{field} ") as info:
        build_record(1, **{field: value})
    assert message == str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("prediction_id", 7, "prediction_id must be a str, got int"),
        ("policy_number", 12, "policy_number must be a str, got int"),
        ("policy_number", None, "policy_number must be a str, got NoneType"),
        ("feature_spec_version", 3, "feature_spec_version must be a str, got int"),
        ("risk_level", [1, 2], "risk_level must be a str, got list"),
        ("model_name", b"M", "model_name must be a str, got bytes"),
        ("model_version", None, "model_version must be a str, got NoneType"),
        ("source", ["API"], "source must be a str, got list"),
        ("fallback_reason", {"kind": "timeout"}, "fallback_reason must be a str, got dict"),
        ("fallback_reason", 1, "fallback_reason must be a str, got int"),
        ("risk_score", "0.5", "risk_score must be a float, got str"),
        ("risk_score", True, "risk_score must be a float, got bool"),
        ("risk_score", None, "risk_score must be a float, got NoneType"),
        ("inference_ms", "fast", "inference_ms must be a float, got str"),
        ("warnings", "abc", "warnings must be a tuple of str such as ('unknown_drug',), got str"),
        (
            "warnings",
            {"k": 1},
            "warnings must be a tuple of str such as ('unknown_drug',), got dict",
        ),
        (
            "warnings",
            None,
            "warnings must be a tuple of str such as ('unknown_drug',), got NoneType",
        ),
        ("warnings", ("ok", 2), "warnings[1] must be a str, got int"),
        ("features", "1" * 105, "features must be a sequence of floats, got str"),
        ("features", None, "features must be a sequence of 105 floats; TypeError on conversion"),
        (
            "features",
            ["x"] * 105,
            "features must be a sequence of 105 floats; ValueError on conversion",
        ),
        ("created_at", "2026-01-01T00:00:00+00:00", "created_at must be a datetime, got str"),
        ("mib_xml", 5, "mib_xml must be bytes, str or None, got int"),
        ("rx_xml", ["<x/>"], "rx_xml must be bytes, str or None, got list"),
    ],
)
def test_record_wrong_type_rejected(field: str, value: object, message: str) -> None:
    """Each value of the wrong type raises TypeError naming the field and the type found."""
    with pytest.raises(TypeError) as info:
        build_record(1, **{field: value})
    assert message == str(info.value)


@pytest.mark.parametrize("warnings", [(), ("unknown_drug",), ["a", "b", "c"]])
def test_record_warnings_kept_as_tuple(warnings: list[str] | tuple[str, ...]) -> None:
    """Zero, one or many warning kinds are stored as a tuple of the same strings."""
    record = build_record(1, warnings=warnings)
    assert tuple(warnings) == record.warnings
    assert isinstance(record.warnings, tuple)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0.0), (1, 1.0), (np.float32(0.5), 0.5), (np.float64(0.25), 0.25)],
)
def test_record_score_stored_as_float(value: object, expected: float) -> None:
    """An int or numpy score in range is stored as a Python float."""
    record = build_record(1, risk_score=value)
    assert expected == record.risk_score
    assert float is type(record.risk_score)


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
    with pytest.raises(RecordDecodeError, match="features column holds 832 bytes; expected 105"):
        decode_record("pred-1", encoded.payload, encoded.features[:-8])


def _payload_with(**changes: object) -> bytes:
    """Return the payload of a valid record with some JSON keys replaced or removed."""
    scalars = json.loads(encode_record(build_record(1)).payload)
    for key, value in changes.items():
        if value is _REMOVE:
            del scalars[key]
        else:
            scalars[key] = value
    return json.dumps(scalars).encode()


_REMOVE = object()
_EXPECTED_SIZE = "expected 105 little-endian float64 values (840 bytes)"
_PREFIX = "queued record 'pred-1' cannot be decoded: "


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (_payload_with(l=[1, 2]), "TypeError: risk_level must be a str, got list"),
        (
            _payload_with(fr={"kind": "timeout"}),
            "TypeError: fallback_reason must be a str, got dict",
        ),
        (
            _payload_with(s=5.0),
            "ValueError: risk_score is outside [0, 1]; pass the model's probability in [0, 1]",
        ),
        (
            b'{"s": NaN}',
            "ValueError: payload lacks the fields policy_number, feature_spec_version, "
            "risk_level, model_name, model_version, source, inference_ms, created_at, "
            "fallback_reason, warnings",
        ),
        (_payload_with(src="EVIL"), "ValueError: source is invalid; use 'API' or 'SQL'"),
        (_payload_with(ms="fast"), "TypeError: inference_ms must be a float, got str"),
        (
            _payload_with(ms=-5),
            "ValueError: inference_ms is negative, NaN or infinite; pass the elapsed milliseconds",
        ),
        (
            _payload_with(p="X" * 5000),
            "ValueError: policy_number has 5000 characters; the maximum is 64",
        ),
        (_payload_with(p=12345), "TypeError: policy_number must be a str, got int"),
        (_payload_with(p=None), "TypeError: policy_number must be a str, got NoneType"),
        (
            _payload_with(w="abc"),
            "TypeError: warnings must be a tuple of str such as ('unknown_drug',), got str",
        ),
        (
            _payload_with(w={"k": 1}),
            "TypeError: warnings must be a tuple of str such as ('unknown_drug',), got dict",
        ),
        (
            _payload_with(t="2099-01-01T00:00:00"),
            "ValueError: created_at is a naive datetime; pass a timezone-aware UTC datetime",
        ),
        (_payload_with(t="yesterday"), "ValueError: created_at is not an ISO 8601 timestamp"),
        (_payload_with(t=17), "TypeError: created_at must be an ISO 8601 string, got int"),
        (_payload_with(mv=_REMOVE), "ValueError: payload lacks the fields model_version"),
        (b"[1, 2]", "TypeError: payload must be a JSON object, got list"),
        (
            b"{not json",
            "JSONDecodeError: the payload is not valid JSON (Expecting property name enclosed "
            "in double quotes at byte 1)",
        ),
        (
            b'{"p":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "RecursionError: the payload's JSON is nested too deeply",
        ),
        (b'{"p": "\xff"}', "UnicodeDecodeError: the payload is not valid UTF-8 (at byte 7)"),
    ],
)
def test_decode_invalid_row_rejected(payload: bytes, problem: str) -> None:
    """A queue row that a valid record cannot produce raises RecordDecodeError naming the field."""
    features = encode_record(build_record(1)).features
    with pytest.raises(RecordDecodeError) as info:
        decode_record("pred-1", payload, features)
    assert _PREFIX + problem == str(info.value)


@pytest.mark.parametrize(
    ("features", "problem"),
    [
        (
            b"",
            "ValueError: features column holds 0 bytes; " + _EXPECTED_SIZE,
        ),
        (
            b"\0" * 8,
            "ValueError: features column holds 8 bytes; " + _EXPECTED_SIZE,
        ),
        (
            "text",
            "TypeError: features column must hold bytes, got str",
        ),
        (
            struct.pack("<105d", math.inf, *[1.0] * 104),
            "ValueError: features[0] (MIB_TOTAL_RECORDS) is NaN or infinite; every feature "
            "must be a finite number because the tables store it as FLOAT and JSON",
        ),
    ],
)
def test_decode_invalid_features_rejected(features: bytes, problem: str) -> None:
    """A features column that is not 105 finite float64 values raises RecordDecodeError."""
    payload = encode_record(build_record(1)).payload
    with pytest.raises(RecordDecodeError) as info:
        decode_record("pred-1", payload, features)
    assert _PREFIX + problem == str(info.value)


def test_decode_error_omits_values() -> None:
    """A decode error names fields and types but quotes none of the row's values."""
    payload = _payload_with(p="SECRET-POLICY-" + "9" * 60, t="SECRET-DATE")
    with pytest.raises(RecordDecodeError) as info:
        decode_record("pred-1", payload, encode_record(build_record(1)).features)
    assert "SECRET" not in str(info.value)


def test_decode_converts_offset_to_utc() -> None:
    """A queued timestamp with a non-UTC offset comes back as the same instant in UTC."""
    encoded = encode_record(build_record(1))
    payload = _payload_with(t="2026-01-01T05:00:00+05:00")
    record = decode_record("pred-1", payload, encoded.features)
    assert datetime(2026, 1, 1, tzinfo=UTC) == record.created_at
    assert timedelta(0) == record.created_at.utcoffset()


@pytest.mark.parametrize("warnings", [[], ["unknown_drug"], ["a", "b", "c"]])
def test_decode_warnings_round_trip(warnings: list[str]) -> None:
    """Zero, one or many warning kinds decode to the same tuple."""
    encoded = encode_record(build_record(1, warnings=warnings))
    record = decode_record(encoded.prediction_id, encoded.payload, encoded.features)
    assert tuple(warnings) == record.warnings


def test_record_is_frozen() -> None:
    """Records cannot be changed after construction."""
    record: PredictionRecord = build_record(1)
    with pytest.raises(AttributeError):
        record.risk_score = 0.9  # type: ignore[misc]
    assert BASE_TIME + timedelta(seconds=1) == record.created_at
