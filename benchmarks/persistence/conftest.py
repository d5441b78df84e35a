"""Shared inputs of the persistence benchmarks (invented data only)."""

from __future__ import annotations

from datetime import UTC, datetime

from evidence_features import FEATURE_NAMES, FEATURE_SPEC_VERSION
from evidence_persistence import PredictionRecord


def bench_record(index: int, prefix: str) -> PredictionRecord:
    """Return a prediction record with id ``{prefix}-{index}`` and made-up feature values."""
    return PredictionRecord(
        prediction_id=f"{prefix}-{index:09d}",
        policy_number=f"POL{index:09d}",
        features=tuple(float(index % 13) + c / 7 for c in range(len(FEATURE_NAMES))),
        feature_spec_version=FEATURE_SPEC_VERSION,
        risk_score=0.42,
        risk_level="MEDIUM",
        model_name="EVIDENCE_RISK_MODEL",
        model_version="REGISTRY_V2",
        source="API",
        inference_ms=3.7,
        created_at=datetime.now(UTC),
        warnings=("unknown_drug",),
    )
