"""PSI and binning against hand-computed values, including empty bins."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from evidence_dashboard.drift import (
    FeatureBins,
    bin_fractions,
    classify_psi,
    compute_feature_drift,
    feature_psi,
    parse_feature_stats,
    population_stability_index,
)


def test_psi_identical_distributions_is_zero() -> None:
    """Equal fractions give a PSI of exactly 0."""
    assert population_stability_index([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_shifted_mass_matches_hand_value() -> None:
    """Moving a quarter of the mass from bin 3 to bin 1 gives 0.5 * ln 2."""
    # (0.5 - 0.25) ln(0.5/0.25) + 0 + (0.25 - 0.5) ln(0.25/0.5) = 0.25 ln 2 + 0.25 ln 2
    psi = population_stability_index([0.25, 0.25, 0.5], [0.5, 0.25, 0.25])

    assert pytest.approx(psi, rel=1e-12) == 0.34657359027997264


def test_psi_empty_expected_bin_uses_floor() -> None:
    """A training bin with no rows is floored at 1e-4 instead of giving infinity."""
    # 2 * (0.4 - 0.5) ln(0.4/0.5) + (0.2 - 0.0001) ln(0.2/0.0001)
    psi = population_stability_index([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])

    assert pytest.approx(psi, rel=1e-12) == 1.5640491119253044


def test_psi_empty_actual_bin_uses_floor() -> None:
    """A recent bin with no rows is floored at 1e-4 as well."""
    # (1 - 0.5) ln(1/0.5) + (0.0001 - 0.5) ln(0.0001/0.5)
    psi = population_stability_index([0.5, 0.5], [1.0, 0.0])

    assert pytest.approx(psi, rel=1e-12) == 4.60431846666895


def test_psi_both_bins_empty_adds_nothing() -> None:
    """A bin empty on both sides contributes 0."""
    assert population_stability_index([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0


@pytest.mark.parametrize(("expected", "actual"), [([0.5, 0.5], [1.0]), ([], [])])
def test_psi_rejects_mismatched_bins(expected: list[float], actual: list[float]) -> None:
    """Different or zero bin counts raise ValueError naming both counts."""
    with pytest.raises(ValueError, match=r"expected has \d+ bins and actual \d+"):
        population_stability_index(expected, actual)


def test_bin_fractions_clips_and_closes_last_bin() -> None:
    """Values outside the edges go to the end bins; the last edge belongs to the last bin."""
    values = [-5.0, 0.0, 0.5, 1.0, 2.5, 3.0, 10.0, float("nan")]

    fractions = bin_fractions(values, [0.0, 1.0, 2.0, 3.0])

    assert pytest.approx(fractions.tolist()) == [3 / 7, 1 / 7, 3 / 7]


def test_bin_fractions_matches_numpy_histogram_inside_range() -> None:
    """Inside the edges the bins are exactly numpy.histogram's."""
    rng = np.random.default_rng(0)
    values = rng.uniform(0.0, 10.0, size=500)
    edges = [0.0, 1.5, 2.0, 5.0, 7.5, 10.0]

    counts, _ = np.histogram(values, bins=edges)

    assert (counts / 500).tolist() == pytest.approx(bin_fractions(values, edges).tolist())


def test_bin_fractions_empty_input_is_zero() -> None:
    """No values give all-zero fractions rather than NaN."""
    assert bin_fractions([], [0.0, 1.0, 2.0]).tolist() == [0.0, 0.0]


def test_feature_psi_constant_training_column() -> None:
    """A single-valued training column compares 'equal to v' against 'anything else'."""
    bins = FeatureBins(edges=(0.0, 0.0), fractions=(1.0,))

    # (0.75 - 1) ln(0.75) + (0.25 - 0.0001) ln(0.25/0.0001)
    psi = feature_psi(np.array([0.0, 0.0, 0.0, 1.0]), bins)

    assert pytest.approx(psi, rel=1e-12) == 2.0271496162259326
    assert feature_psi(np.array([0.0, 0.0]), bins) == 0.0


def test_compute_feature_drift_sorts_worst_first() -> None:
    """Features come back by descending PSI with their row counts and bands."""
    bins = {
        "A": FeatureBins(edges=(0.0, 1.0, 2.0), fractions=(0.5, 0.5)),
        "B": FeatureBins(edges=(0.0, 1.0, 2.0), fractions=(0.5, 0.5)),
        "NOT_IN_FRAME": FeatureBins(edges=(0.0, 1.0), fractions=(1.0,)),
    }
    frame = pd.DataFrame({"A": [0.5, 1.5, 0.5, 1.5], "B": [0.5, 0.5, 0.5, float("nan")]})

    drift = compute_feature_drift(frame, bins)

    assert list(drift["feature"]) == ["B", "A"]
    assert list(drift["rows"]) == [3, 4]
    assert pytest.approx(drift.loc[0, "psi"]) == 4.60431846666895
    assert list(drift["status"]) == ["significant", "stable"]


def test_compute_feature_drift_empty_frame() -> None:
    """No recent rows give an empty result with the usual columns."""
    drift = compute_feature_drift(pd.DataFrame(), {"A": FeatureBins((0.0, 1.0), (1.0,))})

    assert drift.empty
    assert list(drift.columns) == ["feature", "psi", "rows", "status"]


@pytest.mark.parametrize(
    ("psi", "band"),
    [
        (0.0, "stable"),
        (0.0999, "stable"),
        (0.1, "moderate"),
        (0.25, "significant"),
        (3.0, "significant"),
    ],
)
def test_classify_psi_bands(psi: float, band: str) -> None:
    """The bands start at 0.1 and 0.25, lower bounds inclusive."""
    assert band == classify_psi(psi)


def test_feature_bins_rejects_inconsistent_lengths() -> None:
    """Edges must number one more than fractions."""
    with pytest.raises(ValueError, match="bin_edges has 2 values and bin_fractions 2"):
        FeatureBins(edges=(0.0, 1.0), fractions=(0.5, 0.5))


def test_feature_bins_rejects_descending_edges() -> None:
    """Edges must ascend."""
    with pytest.raises(ValueError, match="not sorted ascending"):
        FeatureBins(edges=(2.0, 1.0, 3.0), fractions=(0.5, 0.5))


def test_parse_feature_stats_skips_features_without_bins() -> None:
    """Entries without bins are skipped; invalid bins name the feature."""
    parsed = parse_feature_stats(
        {"A": {"bin_edges": [0, 1], "bin_fractions": [1.0]}, "B": {"mean": 1.0}, "C": "junk"}
    )
    assert list(parsed) == ["A"]
    with pytest.raises(ValueError, match=r"feature_stats\['D'\] is invalid"):
        parse_feature_stats({"D": {"bin_edges": [0, 1, 2], "bin_fractions": [1.0]}})
    assert math.isclose(1.0, parsed["A"].fractions[0])
