"""Tests for the client side of the inference protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.errors import InvalidModelResponseError
from evidence_model_client.protocol import (
    MAX_FIRST_ROW_ID,
    encode_dataframe_split,
    new_first_row_id,
    parse_probabilities,
    validate_matrix,
)

N = len(FEATURE_NAMES)


def test_validate_matrix_names_nan_column_and_row() -> None:
    """A NaN is reported with its feature name and row."""
    matrix = np.zeros((3, N))
    matrix[2, 4] = np.inf
    with pytest.raises(ValueError, match=f"feature {FEATURE_NAMES[4]} of row 2 is NaN"):
        validate_matrix(matrix)


@pytest.mark.parametrize("shape", [(0, N), (2, N - 1), (N,)])
def test_validate_matrix_rejects_shape(shape: tuple[int, ...]) -> None:
    """Empty, narrow and one-dimensional inputs are rejected."""
    with pytest.raises(ValueError, match="expected a feature matrix of shape"):
        validate_matrix(np.zeros(shape))


def test_validate_matrix_casts_float32_to_float64() -> None:
    """float32 input is widened to float64, never the other way round."""
    assert np.float64 == validate_matrix(np.zeros((1, N), dtype=np.float32)).dtype


def test_encode_dataframe_split_layout() -> None:
    """The body is dataframe_split with FEATURE_NAMES columns and index 0..n-1."""
    matrix = np.arange(2 * N, dtype=np.float64).reshape(2, N)
    body = json.loads(encode_dataframe_split(matrix))
    assert body["dataframe_split"]["index"] == [0, 1]
    assert list(FEATURE_NAMES) == body["dataframe_split"]["columns"]
    assert matrix.tolist() == body["dataframe_split"]["data"]


def test_encode_dataframe_split_first_row_id() -> None:
    """The index counts up from first_row_id, written exactly at the largest draw."""
    matrix = np.zeros((3, N))
    body = json.loads(encode_dataframe_split(matrix, MAX_FIRST_ROW_ID))
    assert body["dataframe_split"]["index"] == [2**30, 2**30 + 1, 2**30 + 2]


def test_new_first_row_id_range() -> None:
    """First row ids are never 0 and leave room below 2**31 for the whole batch."""
    drawn = {new_first_row_id() for _ in range(1000)}
    assert min(drawn) >= 1
    assert max(drawn) <= MAX_FIRST_ROW_ID
    assert len(drawn) == 1000


def _answer(*rows: object) -> bytes:
    return json.dumps({"data": list(rows)}).encode()


def test_parse_probabilities_reads_positive_class() -> None:
    """output_feature_1 of each row is returned in row order."""
    content = _answer(
        [0, {"output_feature_0": 0.9, "output_feature_1": 0.1}],
        [1, {"output_feature_0": 0.2, "output_feature_1": 0.8}],
    )
    parsed = parse_probabilities(content, 2)
    assert parsed.probabilities.tolist() == [0.1, 0.8]
    assert parsed.renumbered is False


FIRST = 1_000_000_007


def _numbered(*row_ids: object) -> bytes:
    """A response with probability 0.5 for each of the given row ids."""
    return _answer(*([row_id, {"output_feature_1": 0.5}] for row_id in row_ids))


def test_parse_probabilities_echoed_row_ids() -> None:
    """A response that echoes the request's index is accepted and not marked renumbered."""
    parsed = parse_probabilities(_numbered(FIRST, FIRST + 1, FIRST + 2), 3, FIRST)
    assert parsed.probabilities.tolist() == [0.5, 0.5, 0.5]
    assert parsed.renumbered is False


def test_parse_probabilities_renumbered_rows() -> None:
    """A response numbered 0..n-1 for a request indexed from FIRST is accepted as renumbered."""
    parsed = parse_probabilities(_numbered(0, 1, 2), 3, FIRST)
    assert parsed.probabilities.tolist() == [0.5, 0.5, 0.5]
    assert parsed.renumbered is True


@pytest.mark.parametrize(
    ("row_ids", "pattern"),
    [
        pytest.param([FIRST + 7, FIRST + 8, FIRST + 9], "index starts at", id="other-request"),
        pytest.param([FIRST, FIRST + 1, FIRST + 1], f"expected {FIRST + 2}", id="duplicated"),
        pytest.param([0, 1, 1], "expected 2", id="duplicated-renumbered"),
        pytest.param([FIRST, FIRST + 2, FIRST + 1], f"expected {FIRST + 1}", id="reordered"),
        pytest.param([FIRST, 1, 2], "expected", id="mixed"),
        pytest.param([0, FIRST + 1, FIRST + 2], "expected 1", id="mixed-renumbered"),
        pytest.param([1, 2, 3], "index starts at", id="shifted"),
        pytest.param([True, FIRST + 1, FIRST + 2], "row id True", id="boolean"),
        pytest.param([None, FIRST + 1, FIRST + 2], "row id None", id="null"),
        pytest.param([str(FIRST), FIRST + 1, FIRST + 2], "row id '", id="string"),
    ],
)
def test_parse_probabilities_rejects_row_ids(row_ids: list[object], pattern: str) -> None:
    """Row ids that are neither the request's index nor 0..n-1 in order are invalid."""
    with pytest.raises(InvalidModelResponseError, match=pattern):
        parse_probabilities(_numbered(*row_ids), 3, FIRST)


def test_parse_probabilities_rejects_missing_row_id() -> None:
    """A row without its row id is invalid."""
    content = _answer(
        [FIRST, {"output_feature_1": 0.5}],
        [{"output_feature_1": 0.5}],
    )
    with pytest.raises(InvalidModelResponseError, match=r"row 1 is not \[row, \{outputs\}\]"):
        parse_probabilities(content, 2, FIRST)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"<html>", "not JSON"),
        (b'{"rows": []}', 'no "data" list'),
        (_answer([0, {"output_feature_1": 0.1}]), "returned 1 rows for a batch of 2"),
        (_answer([0, {"output_feature_1": 0.1}], [0, {"output_feature_1": 0.1}]), "order"),
        (_answer([0, {"output_feature_1": 0.1}], [1, {"output_feature_0": 0.1}]), "no numeric"),
        (_answer([0, {"output_feature_1": 0.1}], [1, {"output_feature_1": 1.5}]), r"\[0, 1\]"),
        (_answer([0, {"output_feature_1": 0.1}], [1, {"output_feature_1": "0.5"}]), "numeric"),
        (_answer([0, {"output_feature_1": 0.1}], [1, 0.3]), r"not \[row, \{outputs\}\]"),
        (b'{"data": [[0, {"output_feature_1": NaN}], [1, {"output_feature_1": 0}]]}', "in"),
    ],
)
def test_parse_probabilities_rejects_invalid(content: bytes, pattern: str) -> None:
    """Wrong row counts, order, missing or out-of-range values raise InvalidModelResponseError."""
    with pytest.raises(InvalidModelResponseError, match=pattern):
        parse_probabilities(content, 2)
