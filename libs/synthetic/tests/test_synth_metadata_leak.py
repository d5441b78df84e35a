"""Data-quality columns and edge cases carry no information about the outcome label.

The generator draws the latent health state first. Coverage, report shapes, edge cases and
no-hit Rx replies come from later draws that never read it, and the label is a Bernoulli draw of
the state's risk alone. A model trained on generated pairs must therefore learn the label from
health evidence (drug classes, MIB findings, fill patterns) and not from how the documents
were delivered. These tests fail if a future change ties one of the two together.

The band 0.5 +- 0.06 is about 3.4 standard errors of a null ROC AUC at 2,000 pairs with about
330 positives (standard error sqrt((n0 + n1 + 1) / (12 n0 n1)), about 0.017).
"""

from __future__ import annotations

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC, extract_batch
from evidence_synthetic import EvidencePair, generate_pairs
from sklearn.metrics import roc_auc_score

# Columns that describe how a document was delivered, not the applicant's health. They are the
# META_ columns of the feature spec: parse-error flags, Rx eligibility coverage days, and the
# counts of future-dated and unparseable dates. MIB_UNDATED_RECORDS is left out because the
# `flat` MIB shape has no dates, so there it counts every record and carries the MIB signal.
METADATA_FEATURES = tuple(spec.name for spec in FEATURE_SPEC if spec.name.startswith("META_"))
NULL_AUC_BAND = 0.06


def _null_auc_distance(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return |ROC AUC - 0.5| of one score column. A constant column scores exactly 0.5."""
    return abs(float(roc_auc_score(labels, scores)) - 0.5)


def _rx_text(pair: EvidencePair) -> str:
    """Decode an Rx report well enough to search it for ASCII element text."""
    if pair.rx_xml.startswith(b"\xff\xfe"):
        return pair.rx_xml.decode("utf-16")
    return pair.rx_xml.decode("latin-1")


def test_metadata_feature_list_matches_spec() -> None:
    assert METADATA_FEATURES == (
        "META_MIB_PARSE_ERROR",
        "META_RX_PARSE_ERROR",
        "META_RX_COVERAGE_DAYS",
        "META_FUTURE_DATED_RECORDS",
        "META_UNPARSEABLE_DATES",
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", METADATA_FEATURES)
def test_metadata_feature_alone_not_predictive(
    name: str, population_features: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    matrix, labels, latent_risk = population_features
    column = matrix[:, FEATURE_NAMES.index(name)]

    assert _null_auc_distance(labels, column) <= NULL_AUC_BAND
    # The latent risk is continuous, so ranking it gives a sharper check than the 0/1 label.
    above_median = (latent_risk > np.median(latent_risk)).astype(int)
    assert _null_auc_distance(above_median, column) <= NULL_AUC_BAND


@pytest.mark.slow
def test_coverage_days_spread_in_both_classes(
    population_features: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    matrix, labels, _ = population_features
    coverage = matrix[:, FEATURE_NAMES.index("META_RX_COVERAGE_DAYS")]
    reported = coverage >= 0
    # About 85 % of applicants have coverage and 80 % of their reports list it.
    assert 0.6 <= reported.mean() <= 0.75
    for label in (0, 1):
        days = coverage[reported & (labels == label)]
        assert abs(float(np.median(days)) - float(np.median(coverage[reported]))) < 120


def test_edge_rate_leaves_health_state_unchanged() -> None:
    clean = generate_pairs(150, seed=21, edge_rate=0.0)
    edged = generate_pairs(150, seed=21, edge_rate=1.0)

    assert [p.latent_risk for p in clean] == [p.latent_risk for p in edged]
    assert [p.conditions for p in clean] == [p.conditions for p in edged]
    assert all(p.edge_cases for p in edged)


def test_edge_case_pairs_not_predictive(population: list[EvidencePair]) -> None:
    labels = np.array([p.label for p in population])
    has_edge_case = np.array([bool(p.edge_cases) for p in population], dtype=float)
    has_empty_report = np.array(
        [any(e.endswith(":empty_report") for e in p.edge_cases) for p in population], dtype=float
    )

    assert 0.1 <= has_edge_case.mean() <= 0.2
    assert _null_auc_distance(labels, has_edge_case) <= NULL_AUC_BAND
    assert _null_auc_distance(labels, has_empty_report) <= NULL_AUC_BAND


def test_rx_no_hit_reply_not_predictive(population: list[EvidencePair]) -> None:
    labels = np.array([p.label for p in population])
    no_hit = np.array(["<Result>NOHIT</Result>" in _rx_text(p) for p in population], dtype=float)

    # 15 % of applicants have no PBM coverage, and empty-report edge cases hide a few replies.
    assert 0.11 <= no_hit.mean() <= 0.19
    assert _null_auc_distance(labels, no_hit) <= NULL_AUC_BAND


@pytest.fixture(scope="module")
def population_features(
    population: list[EvidencePair],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, labels and latent risks of the shared 2,000-pair population."""
    matrix = extract_batch(
        [(p.mib_xml, p.rx_xml) for p in population],
        as_of=[p.as_of for p in population],
        lenient=True,
    )
    labels = np.array([p.label for p in population])
    latent_risk = np.array([p.latent_risk for p in population])
    return matrix, labels, latent_risk
