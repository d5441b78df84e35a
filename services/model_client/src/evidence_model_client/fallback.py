"""The rule-based fallback score, used whenever the model service fails to return a score.

The score is a noisy-OR over ten signals read from the feature vector::

    s_k   = clip(x_k / scale_k, 0, 1)          (NaN counts as 0, the signal is absent)
    score = 1 - prod_k (1 - w_k * s_k)

with the weights and scales in ``FALLBACK_TERMS``. They are the same placeholder weights that
define the ``COMBINED_RISK_SCORE`` feature, so the fallback equals that feature whenever the
feature library computes it from the same inputs. The weights are not actuarial results.

Properties: every weight is in (0, 1), so the score is in [0, 1), is 0 when no signal fires, and
never decreases when any input grows.

Reasons are the terms themselves. Writing ``c_k = -ln(1 - w_k * s_k)`` gives
``score = 1 - exp(-sum(c))``, so each term is credited ``score * c_k / sum(c)``; the credited
contributions sum exactly to the score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from evidence_features import FEATURE_NAMES

from evidence_model_client.reasons import Reason, top_reasons

__all__ = [
    "FALLBACK_TERMS",
    "FallbackTerm",
    "rule_based_contributions",
    "rule_based_reasons",
    "rule_based_scores",
    "score_with_reasons",
]


@dataclass(frozen=True, slots=True)
class FallbackTerm:
    """One noisy-OR term: signal ``clip(feature / scale, 0, 1)`` with weight ``weight``."""

    feature: str
    weight: float
    scale: float


FALLBACK_TERMS: tuple[FallbackTerm, ...] = (
    FallbackTerm("MIB_HAS_HIT", 0.15, 1.0),
    FallbackTerm("MIB_MAX_SEVERITY", 0.30, 3.0),
    FallbackTerm("MIB_UNIQUE_COMPANIES", 0.05, 3.0),
    FallbackTerm("RX_MAX_CLASS_SEVERITY", 0.45, 10.0),
    FallbackTerm("RX_CONCURRENT_OPIOID_BENZO", 0.20, 1.0),
    FallbackTerm("RX_MPE_FLAG", 0.25, 1.0),
    FallbackTerm("RX_OPIOID_MAX_DAILY_MME", 0.20, 90.0),
    FallbackTerm("RX_POLYPHARMACY_5", 0.10, 1.0),
    FallbackTerm("XSRC_SUBSTANCE_SIGNAL", 0.15, 1.0),
    FallbackTerm("XSRC_CONDITION_CATEGORY_COUNT", 0.15, 4.0),
)

_INDEXES = np.array([FEATURE_NAMES.index(t.feature) for t in FALLBACK_TERMS])
_WEIGHTS = np.array([t.weight for t in FALLBACK_TERMS])
_SCALES = np.array([t.scale for t in FALLBACK_TERMS])
_TERM_NAMES = tuple(t.feature for t in FALLBACK_TERMS)


def _weighted_signals(matrix: np.ndarray) -> np.ndarray:
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(FEATURE_NAMES):
        msg = f"expected a (n, {len(FEATURE_NAMES)}) feature matrix, got shape {values.shape}"
        raise ValueError(msg)
    signals = np.nan_to_num(values[:, _INDEXES] / _SCALES, nan=0.0, posinf=1.0, neginf=0.0)
    weighted: np.ndarray = _WEIGHTS * np.clip(signals, 0.0, 1.0)
    return weighted


def rule_based_scores(matrix: np.ndarray) -> np.ndarray:
    """Score each row of a (n, 105) feature matrix with the noisy-OR fallback.

    Returns:
        float64 array of shape (n,) with values in [0, 1).

    Raises:
        ValueError: the matrix is not two-dimensional with 105 columns.
    """
    scores: np.ndarray = 1.0 - np.prod(1.0 - _weighted_signals(matrix), axis=1)
    return scores


def _term_contributions(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The score comes from the product, exactly as in rule_based_scores; the log terms only
    # split it into shares.
    scores = 1.0 - np.prod(1.0 - weighted, axis=1, keepdims=True)
    log_terms = -np.log1p(-weighted)
    totals = log_terms.sum(axis=1, keepdims=True)
    shares = np.divide(log_terms, totals, out=np.zeros_like(log_terms), where=totals > 0)
    return scores[:, 0], scores * shares


def rule_based_contributions(matrix: np.ndarray) -> np.ndarray:
    """Return the (n, 105) matrix of each term's credited share of the fallback score.

    Columns that are not fallback terms are 0; each row sums to that row's fallback score.
    """
    _, term_contributions = _term_contributions(_weighted_signals(matrix))
    contributions = np.zeros((term_contributions.shape[0], len(FEATURE_NAMES)))
    contributions[:, _INDEXES] = term_contributions
    return contributions


def score_with_reasons(
    matrix: np.ndarray, *, top_k: int = 5
) -> tuple[np.ndarray, list[list[Reason]]]:
    """Return the fallback scores of a (n, 105) matrix and each row's ``top_k`` terms.

    This is the scorer's hot path: it computes the ten terms once for both results.
    """
    values = np.asarray(matrix, dtype=np.float64)
    scores, term_contributions = _term_contributions(_weighted_signals(values))
    reasons = top_reasons(values[:, _INDEXES], term_contributions, top_k=top_k, names=_TERM_NAMES)
    return scores, reasons


def rule_based_reasons(row: np.ndarray, *, top_k: int = 5) -> list[Reason]:
    """Return the fallback terms that fired for one feature row, largest contribution first.

    Args:
        row: float array of shape (105,) in ``FEATURE_NAMES`` order.
        top_k: the maximum number of reasons.
    """
    _, reasons = score_with_reasons(np.asarray(row, dtype=np.float64).reshape(1, -1), top_k=top_k)
    return reasons[0]
