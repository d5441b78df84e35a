"""Tests for the client side of the inference protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.errors import InvalidModelResponseError
from evidence_model_client.protocol import (
    encode_dataframe_split,
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


def _answer(*rows: object) -> bytes:
    return json.dumps({"data": list(rows)}).encode()


def test_parse_probabilities_reads_positive_class() -> None:
    """output_feature_1 of each row is returned in row order."""
    content = _answer(
        [0, {"output_feature_0": 0.9, "output_feature_1": 0.1}],
        [1, {"output_feature_0": 0.2, "output_feature_1": 0.8}],
    )
    assert parse_probabilities(content, 2).tolist() == [0.1, 0.8]


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
