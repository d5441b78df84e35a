"""Reproducibility, labels and the link between latent state, evidence and outcome."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from evidence_synthetic import EvidencePair, generate_pair, generate_pairs, iter_pairs
from lxml import etree

OPIOIDS = (
    "OXYCODONE",
    "HYDROCODONE",
    "HYDROMORPHONE",
    "MORPHINE",
    "FENTANYL",
    "METHADONE",
    "TAPENTADOL",
    "TRAMADOL",
)
ANTIDIABETICS = (
    "METFORMIN",
    "GLIPIZIDE",
    "GLIMEPIRIDE",
    "SITAGLIPTIN",
    "EMPAGLIFLOZIN",
    "DAPAGLIFLOZIN",
    "DULAGLUTIDE",
    "SEMAGLUTIDE",
    "INSULIN",
)


def _rx_drug_texts(pair: EvidencePair) -> list[str]:
    """Upper-cased drug names and descriptions of every fill in the Rx report."""
    if b"DrugFill" not in pair.rx_xml and b"MedicationDispensed" not in pair.rx_xml:
        return []
    root = etree.fromstring(pair.rx_xml)
    names = ("DrugGenericName", "DrugDescription", "DrugBrandName")
    return [
        (element.text or "").upper()
        for element in root.iter()
        if isinstance(element.tag, str) and etree.QName(element).localname in names
    ]


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula, so the test does not depend on scikit-learn."""
    order = scores.argsort()
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = labels.sum()
    negatives = len(labels) - positives
    return float(
        (ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def test_pairs_same_seed_identical_bytes() -> None:
    first = generate_pairs(40, seed=7)
    second = generate_pairs(40, seed=7)
    assert [p.mib_xml for p in first] == [p.mib_xml for p in second]
    assert [p.rx_xml for p in first] == [p.rx_xml for p in second]
    assert [p.label for p in first] == [p.label for p in second]
    assert first == second


def test_pairs_different_seed_differ() -> None:
    first = generate_pairs(20, seed=7)
    second = generate_pairs(20, seed=8)
    assert [p.rx_xml for p in first] != [p.rx_xml for p in second]
    assert {p.policy_number for p in first}.isdisjoint(p.policy_number for p in second)


def test_pairs_prefix_stable_across_n() -> None:
    short = generate_pairs(5, seed=3)
    long = generate_pairs(50, seed=3)
    assert short == long[:5]


def test_pair_from_generator_state_is_deterministic() -> None:
    first = generate_pair(np.random.default_rng(99), as_of=date(2024, 3, 16))
    second = generate_pair(np.random.default_rng(99), as_of=date(2024, 3, 16))
    assert first == second
    assert first.as_of == date(2024, 3, 16)


def test_pairs_zero_yields_empty_list() -> None:
    assert generate_pairs(0, seed=1) == []


def test_pairs_negative_n_rejected() -> None:
    with pytest.raises(ValueError, match="n must be zero or more"):
        list(iter_pairs(-1))


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_pair_edge_rate_out_of_range_rejected(rate: float) -> None:
    with pytest.raises(ValueError, match="edge_rate must be between 0 and 1"):
        generate_pair(np.random.default_rng(0), edge_rate=rate)


def test_pairs_policy_numbers_unique(population: list[EvidencePair]) -> None:
    numbers = [pair.policy_number for pair in population]
    assert len(numbers) == len(set(numbers))
    assert numbers[0] == "SYN-101-00000000"


def test_pairs_as_of_in_default_range(population: list[EvidencePair]) -> None:
    assert min(p.as_of for p in population) >= date(2022, 1, 1)
    assert max(p.as_of for p in population) <= date(2025, 12, 31)


def test_label_rate_within_band(population: list[EvidencePair]) -> None:
    rate = np.mean([pair.label for pair in population])
    assert 0.10 <= rate <= 0.22


def test_label_values_binary(population: list[EvidencePair]) -> None:
    assert {pair.label for pair in population} == {0, 1}
    assert all(0.0 < pair.latent_risk < 1.0 for pair in population)


def test_latent_risk_ranks_labels(population: list[EvidencePair]) -> None:
    risks = np.array([pair.latent_risk for pair in population])
    labels = np.array([pair.label for pair in population])
    assert _auc(risks, labels) > 0.8


def test_latent_risk_mean_matches_label_rate(population: list[EvidencePair]) -> None:
    risks = np.array([pair.latent_risk for pair in population])
    labels = np.array([pair.label for pair in population])
    # Labels are Bernoulli(latent_risk): the means agree within a few standard errors.
    assert abs(risks.mean() - labels.mean()) < 0.03


def test_opioid_misuse_shows_opioid_fills(population: list[EvidencePair]) -> None:
    misusers = [
        p
        for p in population
        if "opioid_misuse" in p.conditions and b"<Result>HIT" in p.rx_xml and not p.edge_cases
    ]
    assert len(misusers) >= 10
    with_opioids = [p for p in misusers if any(o in t for t in _rx_drug_texts(p) for o in OPIOIDS)]
    assert len(with_opioids) == len(misusers)


def test_diabetes_shows_antidiabetic_fills(population: list[EvidencePair]) -> None:
    def has_antidiabetic(pair: EvidencePair) -> bool:
        return any(d in text for text in _rx_drug_texts(pair) for d in ANTIDIABETICS)

    covered = [p for p in population if b"<Result>HIT" in p.rx_xml and not p.edge_cases]
    diabetic = [p for p in covered if "diabetes" in p.conditions]
    others = [p for p in covered if "diabetes" not in p.conditions]
    diabetic_share = np.mean([has_antidiabetic(p) for p in diabetic])
    other_share = np.mean([has_antidiabetic(p) for p in others])
    assert diabetic_share > 0.6
    assert other_share < 0.05


def test_label_rate_higher_with_serious_conditions(population: list[EvidencePair]) -> None:
    serious = {"cancer", "heart_failure", "opioid_misuse", "copd", "ckd"}
    sick = [p.label for p in population if serious & set(p.conditions)]
    healthy = [p.label for p in population if not p.conditions]
    assert len(sick) >= 50
    assert len(healthy) >= 100
    assert np.mean(sick) > 2 * np.mean(healthy)


def test_label_rate_higher_with_mib_hit(population: list[EvidencePair]) -> None:
    with_hit = [p.label for p in population if b'tc="1001"' in p.mib_xml]
    without = [p.label for p in population if b"1001" not in p.mib_xml and b"HIT" not in p.mib_xml]
    assert np.mean(with_hit) > np.mean(without)
