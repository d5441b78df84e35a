"""Seeded generator of realistic synthetic MIB and Rx evidence pairs with outcome labels.

A latent health state per applicant (age, risk factors, conditions with severities) drives the
drugs on the Rx report, the codes on the MIB report and a binary outcome. All names, codes and
identifiers are made up.
"""

from evidence_synthetic._mib_codes import MIB_CODE_CATEGORIES, MODIFIER_SEVERITY
from evidence_synthetic._mib_xml import MIB_QUIRKS, MIB_SHAPES
from evidence_synthetic._output import SymlinkInOutputError
from evidence_synthetic._pairs import (
    DEFAULT_EDGE_RATE,
    EvidencePair,
    generate_mib_report,
    generate_pair,
    generate_pairs,
    generate_rx_report,
    iter_pairs,
)
from evidence_synthetic._rx_xml import RX_QUIRKS, RX_SHAPES
from evidence_synthetic._samples import SMOKE_INPUTS, write_samples
from evidence_synthetic._writer import write_pairs

__all__ = [
    "DEFAULT_EDGE_RATE",
    "MIB_CODE_CATEGORIES",
    "MIB_QUIRKS",
    "MIB_SHAPES",
    "MODIFIER_SEVERITY",
    "RX_QUIRKS",
    "RX_SHAPES",
    "SMOKE_INPUTS",
    "EvidencePair",
    "SymlinkInOutputError",
    "generate_mib_report",
    "generate_pair",
    "generate_pairs",
    "generate_rx_report",
    "iter_pairs",
    "write_pairs",
    "write_samples",
]
