"""Risk levels derived from the positive-class probability.

| level    | risk_score range |
|----------|------------------|
| LOW      | [0.00, 0.30)     |
| MEDIUM   | [0.30, 0.70)     |
| HIGH     | [0.70, 1.00]     |

The cut-offs are product decisions, fixed here so that the API, the persisted ``RISK_LEVEL``
column and the dashboard agree. Changing them changes the meaning of stored rows.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["HIGH_RISK_FROM", "MEDIUM_RISK_FROM", "RiskLevel", "classify_risk"]

RiskLevel = Literal["LOW", "MEDIUM", "HIGH"]

MEDIUM_RISK_FROM = 0.30
HIGH_RISK_FROM = 0.70


def classify_risk(risk_score: float) -> RiskLevel:
    """Map a score in [0, 1] to its risk level; the lower bound of each band is inclusive."""
    if not 0.0 <= risk_score <= 1.0:
        msg = f"risk_score must lie in [0, 1], got {risk_score!r}"
        raise ValueError(msg)
    if risk_score >= HIGH_RISK_FROM:
        return "HIGH"
    if risk_score >= MEDIUM_RISK_FROM:
        return "MEDIUM"
    return "LOW"
