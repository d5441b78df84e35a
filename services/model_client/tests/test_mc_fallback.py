"""Tests for the rule-based fallback score and its reasons."""

from __future__ import annotations

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.fallback import (
    FALLBACK_TERMS,
    rule_based_contributions,
    rule_based_reasons,
    rule_based_scores,
    score_with_reasons,
)
from hypothesis import given, settings
from hypothesis import strategies as st

N = len(FEATURE_NAMES)


def _row(**values: float) -> np.ndarray:
    row = np.zeros(N)
    for name, value in values.items():
        row[FEATURE_NAMES.index(name)] = value
    return row


def test_fallback_no_evidence_scores_zero() -> None:
    """A row with no signal scores 0 and has no reasons."""
    assert rule_based_scores(np.zeros((1, N))).tolist() == [0.0]
    assert rule_based_reasons(np.zeros(N)) == []


def test_fallback_two_terms_hand_computed() -> None:
    """MIB hit plus maximum Rx severity give 1 - (1 - 0.15)(1 - 0.45) = 0.5325."""
    row = _row(MIB_HAS_HIT=1, RX_MAX_CLASS_SEVERITY=10)
    assert rule_based_scores(row[None, :])[0] == pytest.approx(0.5325)


def test_fallback_scaled_terms_hand_computed() -> None:
    """Scaled signals: severity 2/3 at weight 0.3 and 45 MME (half of 90) at weight 0.2."""
    row = _row(MIB_MAX_SEVERITY=2, RX_OPIOID_MAX_DAILY_MME=45)
    expected = 1 - (1 - 0.30 * 2 / 3) * (1 - 0.20 * 0.5)
    assert rule_based_scores(row[None, :])[0] == pytest.approx(expected)


def test_fallback_signals_are_capped() -> None:
    """Values beyond the scale count as a full signal, not more."""
    capped = _row(RX_OPIOID_MAX_DAILY_MME=900, XSRC_CONDITION_CATEGORY_COUNT=40)
    at_scale = _row(RX_OPIOID_MAX_DAILY_MME=90, XSRC_CONDITION_CATEGORY_COUNT=4)
    np.testing.assert_array_equal(
        rule_based_scores(at_scale[None, :]), rule_based_scores(capped[None, :])
    )


def test_fallback_all_terms_maximal_below_one() -> None:
    """Every term at full strength gives 1 - prod(1 - w), which is below 1."""
    row = _row(**{t.feature: t.scale for t in FALLBACK_TERMS})
    expected = 1 - np.prod([1 - t.weight for t in FALLBACK_TERMS])
    assert rule_based_scores(row[None, :])[0] == pytest.approx(expected)
    assert expected < 1.0


def test_fallback_nan_and_negative_count_as_absent() -> None:
    """NaN and negative inputs add nothing, so the score stays in [0, 1]."""
    row = _row(MIB_HAS_HIT=np.nan, RX_MAX_CLASS_SEVERITY=-5)
    assert rule_based_scores(row[None, :]).tolist() == [0.0]


def test_fallback_ignores_non_term_features() -> None:
    """Columns outside the ten terms do not change the score."""
    row = np.full(N, 1e6)
    for term in FALLBACK_TERMS:
        row[FEATURE_NAMES.index(term.feature)] = 0.0
    assert rule_based_scores(row[None, :]).tolist() == [0.0]


def test_fallback_rejects_wrong_width() -> None:
    """A matrix without 105 columns raises ValueError naming the shape."""
    with pytest.raises(ValueError, match=r"got shape \(2, 3\)"):
        rule_based_scores(np.zeros((2, 3)))


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(st.floats(0, 200), min_size=N, max_size=N),
    term=st.sampled_from(FALLBACK_TERMS),
    increase=st.floats(0, 100),
)
def test_fallback_monotone_in_every_term(base: list[float], term: object, increase: float) -> None:
    """Raising any term's input never lowers the score, and the score stays in [0, 1]."""
    row = np.array(base)
    higher = row.copy()
    higher[FEATURE_NAMES.index(term.feature)] += increase  # type: ignore[attr-defined]
    low, high = rule_based_scores(np.vstack([row, higher]))
    assert 0.0 <= low <= high <= 1.0


def test_fallback_contributions_sum_to_score() -> None:
    """The credited contributions of a row add up to its score."""
    matrix = np.vstack(
        [_row(MIB_HAS_HIT=1, RX_MPE_FLAG=1, RX_POLYPHARMACY_5=1), _row(RX_MAX_CLASS_SEVERITY=3)]
    )
    contributions = rule_based_contributions(matrix)
    np.testing.assert_allclose(rule_based_scores(matrix), contributions.sum(axis=1))


def test_fallback_reasons_ordered_by_contribution() -> None:
    """Reasons list the fired terms, largest first, with the applicant's raw value."""
    row = _row(MIB_HAS_HIT=1, RX_MAX_CLASS_SEVERITY=10, RX_POLYPHARMACY_5=1)
    reasons = rule_based_reasons(row)
    assert [r.feature for r in reasons] == [
        "RX_MAX_CLASS_SEVERITY",
        "MIB_HAS_HIT",
        "RX_POLYPHARMACY_5",
    ]
    assert reasons[0].value == 10.0
    assert sum(r.contribution for r in reasons) == pytest.approx(rule_based_scores(row[None])[0])


def test_fallback_reasons_top_k_limits_count() -> None:
    """top_k caps the number of reasons."""
    row = _row(**{t.feature: t.scale for t in FALLBACK_TERMS})
    assert len(rule_based_reasons(row, top_k=3)) == 3


def test_score_with_reasons_matches_separate_functions() -> None:
    """The combined hot path equals rule_based_scores and rule_based_reasons."""
    matrix = np.vstack([_row(MIB_HAS_HIT=1, RX_MPE_FLAG=1), np.zeros(N)])
    scores, reasons = score_with_reasons(matrix, top_k=5)
    np.testing.assert_array_equal(rule_based_scores(matrix), scores)
    assert [rule_based_reasons(matrix[0]), []] == reasons
