"""Hardened MIB and Rx XML parsing and the declared 105-column underwriting feature vector."""

from evidence_features._codemap import MIB_CATEGORIES, CodeMap, load_code_map
from evidence_features._drugs import load_drug_catalog as _load_drug_catalog
from evidence_features._extract import Document, extract_batch, extract_features
from evidence_features._spec import (
    FEATURE_NAMES,
    FEATURE_SPEC,
    FEATURE_SPEC_HASH,
    FEATURE_SPEC_VERSION,
    FeatureSpec,
)
from evidence_features._vector import (
    WARNING_GUIDE,
    WARNING_KINDS,
    FeatureVector,
    FeatureWarning,
    WarningGuide,
)
from evidence_features._xml import ParseLimits
from evidence_features.errors import (
    CodeMapError,
    DocumentError,
    DocumentTooLargeError,
    EvidenceFeaturesError,
    HostileDocumentError,
    MalformedDocumentError,
)

DRUG_TABLE_VERSION: str = _load_drug_catalog().version
"""Version of the shipped drug class table (`data/drug_classes.toml`)."""
MME_FACTOR_SOURCE: str = _load_drug_catalog().mme_factor_source
"""Opioid MME conversion table the drug class table uses ("CDC 2022")."""

__all__ = [
    "DRUG_TABLE_VERSION",
    "FEATURE_NAMES",
    "FEATURE_SPEC",
    "FEATURE_SPEC_HASH",
    "FEATURE_SPEC_VERSION",
    "MIB_CATEGORIES",
    "MME_FACTOR_SOURCE",
    "WARNING_GUIDE",
    "WARNING_KINDS",
    "CodeMap",
    "CodeMapError",
    "Document",
    "DocumentError",
    "DocumentTooLargeError",
    "EvidenceFeaturesError",
    "FeatureSpec",
    "FeatureVector",
    "FeatureWarning",
    "HostileDocumentError",
    "MalformedDocumentError",
    "ParseLimits",
    "WarningGuide",
    "extract_batch",
    "extract_features",
    "load_code_map",
]
