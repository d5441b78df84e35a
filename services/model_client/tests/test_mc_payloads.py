"""Tests for parsing every request shape the Snowflake inference server accepts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.payloads import InvalidPayloadError, parse_payload

N = len(FEATURE_NAMES)
MATRIX = np.arange(2 * N, dtype=np.float64).reshape(2, N) / 7.0


def _body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _all_shapes() -> dict[str, bytes]:
    rows = MATRIX.tolist()
    records = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in rows]
    reversed_columns = list(reversed(FEATURE_NAMES))
    return {
        "flat": _body({"data": [[i, *row] for i, row in enumerate(rows)]}),
        "wide": _body({"data": [[i, record] for i, record in enumerate(records)]}),
        "split": _body(
            {"dataframe_split": {"index": [0, 1], "columns": list(FEATURE_NAMES), "data": rows}}
        ),
        "split_reordered": _body(
            {
                "dataframe_split": {
                    "columns": reversed_columns,
                    "data": [[r[c] for c in reversed_columns] for r in records],
                }
            }
        ),
        "records": _body({"dataframe_records": records}),
    }


@pytest.mark.parametrize("shape", list(_all_shapes()))
def test_payload_every_shape_gives_same_matrix(shape: str) -> None:
    """Flat, wide, split (any column order) and records parse to the same spec-order matrix."""
    parsed = parse_payload(_all_shapes()[shape], max_rows=10)
    np.testing.assert_array_equal(MATRIX, parsed.matrix)
    assert parsed.row_ids == [0, 1]


def test_payload_flat_keeps_row_ids() -> None:
    """Row ids from the request are echoed, in request order."""
    body = _body({"data": [[7, *MATRIX[0].tolist()], [3, *MATRIX[1].tolist()]]})
    assert parse_payload(body, max_rows=10).row_ids == [7, 3]


def test_payload_extra_columns_ignored() -> None:
    """Columns listed in extra_columns may hold anything and are dropped."""
    records = [{**dict(zip(FEATURE_NAMES, MATRIX[0].tolist(), strict=True)), "POLICY": "P-1"}]
    body = _body({"dataframe_records": records, "extra_columns": ["POLICY"]})
    np.testing.assert_array_equal(MATRIX[:1], parse_payload(body, max_rows=10).matrix)


def _flat_with(value: object, column: int = 3) -> bytes:
    row: list[object] = [0, *MATRIX[0].tolist()]
    row[1 + column] = value
    return _body({"data": [row]})


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"rows": []}', "exactly one of the keys"),
        (_body({"data": [[0, 1.0]], "dataframe_records": []}), "exactly one of the keys"),
        (_body({"data": [[0, 1.0]], "foo": 1}), r"unknown top-level keys \['foo'\]"),
        (_body({"data": [[0, 1.0]], "params": {"t": 1}}), "no inference parameters"),
        (_body({"data": []}), "non-empty list"),
        (_body({"data": [[0, 1.0, 2.0]]}), "row 0 has 2 feature values; expected 105"),
        (_body({"data": [["a", *MATRIX[0].tolist()]]}), "integer row id"),
        (
            _flat_with("1.5"),
            f"column {FEATURE_NAMES[3]} of row 0 must be a number or null, got str",
        ),
        (_flat_with(True), "must be a number or null, got bool"),
        (_flat_with([None]), "must be a number or null, got list"),
        (b'{"data": [[0' + b", 0" * 50 + b", NaN" + b", 0" * 54 + b"]]}", "must be finite"),
        (b'{"data": ' + b"[" * 5000 + b"NaN" + b"]" * 5000 + b"}", "nested too deeply"),
        (_flat_with(10**400), f"column {FEATURE_NAMES[3]} of row 0 is an integer too large"),
        (_flat_with(1e39), f"column {FEATURE_NAMES[3]} of row 0 is beyond the float32 range"),
        (b'{"data": [[0, ' + b"9" * 4301 + b"]]}", "integer too long to convert"),
        (_flat_with(-1e39), f"column {FEATURE_NAMES[3]} of row 0 is beyond the float32 range"),
        (_body({"dataframe_records": [{"A": 1}]}), r"unknown columns \['A'\]"),
        (_body({"dataframe_records": [{FEATURE_NAMES[0]: 1}]}), "lacks columns"),
        (
            _body({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [[1.0]]}}),
            "row 0 has 1 values; expected 105",
        ),
        (
            _body({"dataframe_split": {"columns": [*FEATURE_NAMES, "MIB_HIT_COUNT"], "data": []}}),
            "repeats columns",
        ),
        (
            _body(
                {
                    "data": [
                        [0, *MATRIX[0].tolist()],
                        [1, dict(zip(FEATURE_NAMES, MATRIX[1].tolist(), strict=True))],
                    ]
                }
            ),
            r"data row 1 is \[row_id, \{column: value\}\] but row 0 is \[row_id, values...\]",
        ),
    ],
)
def test_payload_invalid_bodies(body: bytes, pattern: str) -> None:
    """Each malformed body raises InvalidPayloadError (400) naming the problem."""
    with pytest.raises(InvalidPayloadError, match=pattern) as info:
        parse_payload(body, max_rows=10)
    assert info.value.status == 400


def test_payload_too_many_rows_is_413() -> None:
    """More rows than max_rows give status 413."""
    body = _body({"data": [[i, *MATRIX[0].tolist()] for i in range(3)]})
    with pytest.raises(InvalidPayloadError, match="at most 2") as info:
        parse_payload(body, max_rows=2)
    assert info.value.status == 413


def test_payload_error_never_echoes_value() -> None:
    """A rejected value does not appear in the message (values are health data)."""
    with pytest.raises(InvalidPayloadError) as info:
        parse_payload(_flat_with("SECRET-DRUG-NAME"), max_rows=10)
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize("shape", list(_all_shapes()))
def test_payload_null_becomes_nan(shape: str) -> None:
    """A null (SQL NULL) in any shape is a missing value: NaN at its place, nothing else."""
    body = _all_shapes()[shape]
    payload = json.loads(body)
    if shape == "flat":
        payload["data"][1][1 + 4] = None
    elif shape == "wide":
        payload["data"][1][1][FEATURE_NAMES[4]] = None
    elif shape == "records":
        payload["dataframe_records"][1][FEATURE_NAMES[4]] = None
    else:
        split = payload["dataframe_split"]
        split["data"][1][split["columns"].index(FEATURE_NAMES[4])] = None
    expected = MATRIX.copy()
    expected[1, 4] = np.nan

    parsed = parse_payload(_body(payload), max_rows=10)

    np.testing.assert_array_equal(expected, parsed.matrix)
    assert np.isnan(parsed.matrix).sum() == 1


def test_payload_nulls_everywhere() -> None:
    """A row of nulls only parses to a row of NaN; the other row keeps its values."""
    body = _body({"data": [[0, *([None] * N)], [1, *MATRIX[1].tolist()]]})
    parsed = parse_payload(body, max_rows=10)
    assert np.isnan(parsed.matrix[0]).all()
    np.testing.assert_array_equal(MATRIX[1], parsed.matrix[1])


def test_payload_nan_token_beside_null_rejected() -> None:
    """A NaN token stays an error when a null elsewhere is accepted."""
    values = ["0"] * N
    values[2] = "null"
    values[9] = "NaN"
    body = ('{"data": [[0, ' + ", ".join(values) + "]]}").encode()
    with pytest.raises(InvalidPayloadError, match=f"column {FEATURE_NAMES[9]} of row 0 must be"):
        parse_payload(body, max_rows=10)


def test_payload_many_repeated_columns_rejected() -> None:
    """200,000 repeated column names get the repeat error.

    A count per column took 3 s for 20,000 names, so this count would outlast the test timeout.
    """
    body = _body({"dataframe_split": {"columns": ["X"] * 200_000, "data": [[0]]}})
    with pytest.raises(InvalidPayloadError, match=r"repeats columns \['X'\]"):
        parse_payload(body, max_rows=10)
