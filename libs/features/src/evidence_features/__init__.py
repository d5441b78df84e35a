"""Hardened MIB and Rx XML parsing and the declared 105-column underwriting feature vector."""

from evidence_features._spec import (
    FEATURE_NAMES,
    FEATURE_SPEC,
    FEATURE_SPEC_HASH,
    FEATURE_SPEC_VERSION,
    FeatureSpec,
)

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SPEC",
    "FEATURE_SPEC_HASH",
    "FEATURE_SPEC_VERSION",
    "FeatureSpec",
]
