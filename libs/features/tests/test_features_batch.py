"""Batch extraction: same code path as single pairs, lenient mode, frames and as-of dates."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from evidence_features import (
    FEATURE_NAMES,
    HostileDocumentError,
    MalformedDocumentError,
    extract_batch,
    extract_features,
)

evidence_synthetic = pytest.importorskip("evidence_synthetic")

GOOD_RX = (
    b"<IntelRXResponse><DrugFill><FillDate>2024-01-01</FillDate>"
    b"<DrugGenericName>METFORMIN</DrugGenericName></DrugFill></IntelRXResponse>"
)


@pytest.mark.slow
def test_batch_equals_single_on_1000_generated_pairs() -> None:
    """extract_batch rows equal extract_features values bit for bit on 1,000 generated pairs."""
    pairs = evidence_synthetic.generate_pairs(1000, seed=11)
    documents = [(pair.mib_xml, pair.rx_xml) for pair in pairs]
    dates = [pair.as_of for pair in pairs]
    matrix = extract_batch(documents, as_of=dates, lenient=True)
    single = np.vstack(
        [
            _single_or_lenient(mib, rx, as_of)
            for (mib, rx), as_of in zip(documents, dates, strict=True)
        ]
    )
    assert matrix.shape == (1000, 105)
    assert np.isfinite(matrix).all()
    np.testing.assert_array_equal(single, matrix)


def _single_or_lenient(mib: bytes, rx: bytes, as_of: date) -> np.ndarray:
    try:
        return extract_features(mib, rx, as_of=as_of).values
    except (MalformedDocumentError, HostileDocumentError):
        # Generated edge cases include broken documents; the lenient row is the reference then.
        row: np.ndarray = extract_batch([(mib, rx)], as_of=as_of, lenient=True)[0]
        return row


def test_batch_frame_columns_and_dtype() -> None:
    """as_frame=True returns a DataFrame with FEATURE_NAMES columns of float64."""
    frame = extract_batch([(None, GOOD_RX), (b"<r/>", None)], as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(FEATURE_NAMES) == list(frame.columns)
    assert {np.dtype("float64")} == set(frame.dtypes)
    assert frame["RX_TOTAL_FILLS"].tolist() == [1.0, 0.0]


def test_batch_strict_raises_on_hostile() -> None:
    """Without lenient, the first hostile document raises as in single extraction."""
    with pytest.raises(HostileDocumentError):
        extract_batch([(None, GOOD_RX), (b"<!DOCTYPE r><r/>", None)])


def test_batch_lenient_sets_parse_error_columns() -> None:
    """Lenient mode records a failed document in META_*_PARSE_ERROR and keeps the other one."""
    matrix = extract_batch(
        [(b"<MIBResponse><MIBRecord>", GOOD_RX), (b"<r/>", b"<!DOCTYPE r><r/>")], lenient=True
    )
    index = {name: position for position, name in enumerate(FEATURE_NAMES)}
    assert matrix[:, index["META_MIB_PARSE_ERROR"]].tolist() == [1.0, 0.0]
    assert matrix[:, index["META_RX_PARSE_ERROR"]].tolist() == [0.0, 1.0]
    assert matrix[:, index["RX_TOTAL_FILLS"]].tolist() == [1.0, 0.0]


def test_batch_as_of_per_pair() -> None:
    """A sequence of as-of dates applies one per pair."""
    matrix = extract_batch(
        [(None, GOOD_RX), (None, GOOD_RX)], as_of=[date(2024, 1, 11), date(2024, 2, 1)]
    )
    column = FEATURE_NAMES.index("RX_DAYS_SINCE_LAST_FILL")
    assert matrix[:, column].tolist() == [10.0, 31.0]


def test_batch_as_of_length_mismatch() -> None:
    """An as-of sequence of the wrong length raises ValueError."""
    with pytest.raises(ValueError, match="as_of has 1 dates for 2 pairs"):
        extract_batch([(None, None), (None, None)], as_of=[date(2024, 1, 1)])


def test_batch_empty_input() -> None:
    """No pairs give a (0, 105) array."""
    assert extract_batch([]).shape == (0, 105)
