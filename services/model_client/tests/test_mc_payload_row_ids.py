"""Tests for row ids, dataframe_split keys, params and extra_columns in request bodies."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.payloads import InvalidPayloadError, parse_payload

N = len(FEATURE_NAMES)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _matrix(n_rows: int) -> np.ndarray:
    return np.arange(n_rows * N, dtype=np.float64).reshape(n_rows, N) / 8.0


def _split(index: object, n_rows: int = 1, **extra: object) -> bytes:
    split: dict[str, object] = {"columns": list(FEATURE_NAMES), "data": _matrix(n_rows).tolist()}
    if index is not ...:
        split["index"] = index
    return json.dumps({"dataframe_split": split, **extra}).encode()


def _flat(row_ids: list[object]) -> bytes:
    rows = _matrix(len(row_ids)).tolist()
    flat_rows = [[row_id, *row] for row_id, row in zip(row_ids, rows, strict=True)]
    return json.dumps({"data": flat_rows}).encode()


def _parse_error(body: bytes) -> InvalidPayloadError:
    with pytest.raises(InvalidPayloadError) as info:
        parse_payload(body, max_rows=100)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize(
    ("index", "n_rows"),
    [
        ([0], 1),
        ([7], 1),
        ([5, 3, 9], 3),
        ([INT64_MIN, -1, INT64_MAX], 3),
        (list(range(100, 150)), 50),
    ],
)
def test_split_index_becomes_row_ids(index: list[int], n_rows: int) -> None:
    """Integer index entries are the row ids, in request order, for one and many rows."""
    parsed = parse_payload(_split(index, n_rows), max_rows=100)
    assert index == parsed.row_ids
    np.testing.assert_array_equal(_matrix(n_rows), parsed.matrix)


@pytest.mark.parametrize("n_rows", [1, 4])
def test_split_without_index_numbers_rows(n_rows: int) -> None:
    """A split body without "index" (pandas' index=False) gets row ids 0..n-1."""
    parsed = parse_payload(_split(..., n_rows), max_rows=100)
    assert list(range(n_rows)) == parsed.row_ids


def test_split_pandas_to_json_round_trip() -> None:
    """A body written by pandas' to_json(orient="split") keeps the frame's integer index."""
    frame = pd.DataFrame(_matrix(3), columns=list(FEATURE_NAMES), index=[10, 20, 30])
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))}).encode()
    parsed = parse_payload(body, max_rows=100)
    assert parsed.row_ids == [10, 20, 30]
    np.testing.assert_array_equal(frame.to_numpy(), parsed.matrix)
    # pandas reads the same body back with the same index, so both agree on the row ids.
    read_back = pd.read_json(io.StringIO(frame.to_json(orient="split")), orient="split")
    assert read_back.index.tolist() == parsed.row_ids


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        (True, "got a boolean"),
        (False, "got a boolean"),
        (None, "got null"),
        ("0", "got a string"),
        (1.0, "got a float"),
        (0.5, "got a float"),
        ([0], "got a list"),
        ({"id": 0}, "got an object"),
        (INT64_MAX + 1, "got an integer beyond the signed 64-bit range"),
        (INT64_MIN - 1, "got a number beyond the signed 64-bit range"),
        (2**64 - 1, "got an integer beyond the signed 64-bit range"),
        (2**70, "got a number beyond the signed 64-bit range"),
    ],
)
def test_split_index_entry_rejected(entry: object, kind: str) -> None:
    """A non-integer or out-of-range index entry is a 400 naming its position and JSON type."""
    error = _parse_error(_split([0, entry], n_rows=2))
    assert f"dataframe_split.index entry 1 must be an integer row id; {kind}" == str(error)


def test_split_index_huge_integer_json_fallback() -> None:
    """An integer of 70 bits read by the standard-library parser (NaN elsewhere) is a 400."""
    columns = json.dumps([*FEATURE_NAMES, "NOTE"])
    row = "[" + "0.0, " * N + "NaN]"
    body = (
        f'{{"dataframe_split": {{"index": [{2**70}], "columns": {columns}, "data": [{row}]}}, '
        '"extra_columns": ["NOTE"]}'
    ).encode()
    error = _parse_error(body)
    assert "got an integer beyond the signed 64-bit range" in str(error)


def test_split_index_error_never_echoes_value() -> None:
    """A string index entry (it may be a policy number) is not quoted in the message."""
    error = _parse_error(_split(["POLICY-SECRET-123"]))
    assert "SECRET" not in str(error)


@pytest.mark.parametrize(
    ("index", "n_rows", "message"),
    [
        (
            None,
            1,
            "dataframe_split.index must be a list of 1 integer row ids, one per data row, "
            "got null; omit it to number the rows 0..0",
        ),
        ("0", 1, "got a string"),
        (0, 2, "dataframe_split.index must be a list of 2 integer row ids"),
        ({"0": 0}, 1, "got an object"),
        ([], 1, "dataframe_split.index has 0 row ids for 1 data rows"),
        ([0, 1], 1, "dataframe_split.index has 2 row ids for 1 data rows"),
        ([0], 3, "dataframe_split.index has 1 row ids for 3 data rows"),
    ],
)
def test_split_index_shape_rejected(index: object, n_rows: int, message: str) -> None:
    """An index that is not a list, or has another length than data, is a 400."""
    assert message in str(_parse_error(_split(index, n_rows)))


@pytest.mark.parametrize(
    ("index", "repeated"),
    [([0, 0], "[0]"), ([4, 1, 4, 1, 2], "[4, 1] (2 in all)"), ([-3, 2, -3], "[-3]")],
)
def test_split_index_duplicates_rejected(index: list[int], repeated: str) -> None:
    """Repeated index values are a 400 listing them, because row ids must identify rows."""
    error = _parse_error(_split(index, n_rows=len(index)))
    assert f"dataframe_split.index contains repeated row ids {repeated}" in str(error)


def test_split_zero_rows_rejected() -> None:
    """An empty frame (pandas writes index [] and data []) is a 400, not an empty response."""
    body = json.dumps(
        {"dataframe_split": {"index": [], "columns": list(FEATURE_NAMES), "data": []}}
    ).encode()
    assert "dataframe_split.data must be a non-empty list of rows" in str(_parse_error(body))


def test_split_unknown_key_rejected() -> None:
    """Keys other than index, columns and data are a 400, as in pandas' read_json."""
    split = {"idx": [0], "columns": list(FEATURE_NAMES), "data": _matrix(1).tolist()}
    error = _parse_error(json.dumps({"dataframe_split": split}).encode())
    assert "dataframe_split has unknown keys ['idx']" in str(error)


def test_split_row_not_list_rejected() -> None:
    """A data row that is a number instead of a list names the row and the expected width."""
    body = json.dumps({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [7]}}).encode()
    message = str(_parse_error(body))
    assert message == (
        f"dataframe_split.data row 0 must be a list of {N} values, one per column, got an integer"
    )


@pytest.mark.parametrize(
    ("row_ids", "message"),
    [
        ([True], "data row 0 must start with an integer row id; got a boolean"),
        ([0, None], "data row 1 must start with an integer row id; got null"),
        ([1.0], "data row 0 must start with an integer row id; got a float"),
        ([INT64_MAX + 1], "got an integer beyond the signed 64-bit range"),
        ([3, 3], "data contains repeated row ids [3]"),
    ],
)
def test_flat_row_id_rejected(row_ids: list[object], message: str) -> None:
    """Flat row ids follow the same rules as the split index."""
    assert message in str(_parse_error(_flat(row_ids)))


def test_wide_row_id_duplicates_rejected() -> None:
    """Wide rows with a repeated row id are a 400."""
    record = dict(zip(FEATURE_NAMES, _matrix(1)[0].tolist(), strict=True))
    body = json.dumps({"data": [[0, record], [0, record]]}).encode()
    assert "data contains repeated row ids [0]" in str(_parse_error(body))


def test_flat_row_ids_extreme_values_kept() -> None:
    """The ends of the signed 64-bit range are valid row ids."""
    assert [INT64_MIN, INT64_MAX] == parse_payload(
        _flat([INT64_MIN, INT64_MAX]), max_rows=10
    ).row_ids


def test_records_row_ids_are_positions() -> None:
    """dataframe_records rows carry no id, so the row ids are their positions."""
    records = [dict(zip(FEATURE_NAMES, row, strict=True)) for row in _matrix(3).tolist()]
    body = json.dumps({"dataframe_records": records}).encode()
    assert [0, 1, 2] == parse_payload(body, max_rows=10).row_ids


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([], "params must be a JSON object, got a list; omit it or send {}"),
        (0, "params must be a JSON object, got an integer"),
        (False, "params must be a JSON object, got a boolean"),
        ("t", "params must be a JSON object, got a string"),
        ({"temperature": 1}, "this model takes no inference parameters, got ['temperature']"),
    ],
)
def test_params_rejected(params: object, message: str) -> None:
    """A params value that is not an object, or names any parameter, is a 400."""
    assert message in str(_parse_error(_split([0], params=params)))


@pytest.mark.parametrize("params", [{}, None])
def test_params_empty_accepted(params: object) -> None:
    """An empty params object, or null, is the same as no params."""
    assert [0] == parse_payload(_split([0], params=params), max_rows=10).row_ids


def test_extra_columns_feature_rejected() -> None:
    """A feature column listed in extra_columns is a 400 instead of being silently scored."""
    columns = list(FEATURE_NAMES)
    body = json.dumps(
        {
            "dataframe_split": {"columns": columns, "data": _matrix(1).tolist()},
            "extra_columns": ["POLICY", FEATURE_NAMES[2]],
        }
    ).encode()
    message = str(_parse_error(body))
    assert f"extra_columns names feature columns ['{FEATURE_NAMES[2]}']" in message


def test_extra_columns_with_data_shape_rejected() -> None:
    """extra_columns with a flat or wide body is a 400 instead of being silently ignored."""
    rows = [[0, *_matrix(1)[0].tolist()]]
    body = json.dumps({"data": rows, "extra_columns": ["POLICY"]}).encode()
    message = str(_parse_error(body))
    assert "extra_columns applies to dataframe_split and dataframe_records bodies only" in message


def test_extra_columns_split_reordered_kept_out() -> None:
    """Extra split columns in any position hold any JSON value and never reach the matrix."""
    columns = ["POLICY", *reversed(FEATURE_NAMES), "NOTE"]
    rows = [["P-1", *reversed(row), None] for row in _matrix(2).tolist()]
    body = json.dumps(
        {
            "dataframe_split": {"index": [4, 2], "columns": columns, "data": rows},
            "extra_columns": ["POLICY", "NOTE"],
        }
    ).encode()
    parsed = parse_payload(body, max_rows=10)
    assert parsed.row_ids == [4, 2]
    np.testing.assert_array_equal(_matrix(2), parsed.matrix)


def test_wide_unknown_key_hint_no_extra_columns() -> None:
    """An unknown key in a wide row suggests removing it, since extra_columns is not allowed."""
    record = {**dict(zip(FEATURE_NAMES, _matrix(1)[0].tolist(), strict=True)), "POLICY": 1.0}
    body = json.dumps({"data": [[0, record]]}).encode()
    message = str(_parse_error(body))
    assert "data row 0 has unknown columns ['POLICY']" in message
    assert "extra_columns" not in message
