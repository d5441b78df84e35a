"""Population stability index (PSI) of recent feature values against the training bins.

The training run stores, per feature, the bin edges and the fraction of training rows in each bin
(``feature_stats`` in the artifact's ``metadata.json``). PSI compares the recent fractions ``a``
with those expected fractions ``e`` over the same bins::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

An empty bin on either side would make the logarithm infinite, so both fractions are floored at
``EMPTY_BIN_FRACTION`` first. The common rule of thumb reads the result as: below 0.1 stable,
0.1 to 0.25 moderate shift, 0.25 and above significant shift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "EMPTY_BIN_FRACTION",
    "MODERATE_PSI",
    "SIGNIFICANT_PSI",
    "FeatureBins",
    "bin_fractions",
    "classify_psi",
    "compute_feature_drift",
    "feature_psi",
    "parse_feature_stats",
    "population_stability_index",
]

EMPTY_BIN_FRACTION = 1e-4
MODERATE_PSI = 0.1
SIGNIFICANT_PSI = 0.25

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FeatureBins:
    """Training-time histogram of one feature: ``len(edges) == len(fractions) + 1``."""

    edges: tuple[float, ...]
    fractions: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.fractions) < 1 or len(self.edges) != len(self.fractions) + 1:
            msg = (
                f"bin_edges has {len(self.edges)} values and bin_fractions {len(self.fractions)}; "
                "expected one more edge than fractions and at least one bin"
            )
            raise ValueError(msg)
        if any(b < a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            msg = f"bin_edges {list(self.edges)[:6]!r}... are not sorted ascending"
            raise ValueError(msg)


def bin_fractions(values: Sequence[float] | FloatArray, edges: Sequence[float]) -> FloatArray:
    """Return the fraction of ``values`` in each bin given by ``edges``.

    Bins follow ``numpy.histogram``: each is ``[left, right)`` except the last, which also
    includes its right edge. Values below the first edge count in the first bin and values above
    the last edge in the last bin, because recent data may leave the training range. NaN values
    are dropped. An empty input returns all zeros.
    """
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    n_bins = len(edges) - 1
    counts = np.zeros(n_bins, dtype=np.float64)
    if data.size == 0:
        return counts
    inner_edges = np.asarray(edges[1:-1], dtype=np.float64)
    indexes = np.searchsorted(inner_edges, data, side="right")
    np.add.at(counts, indexes, 1.0)
    result: FloatArray = counts / data.size
    return result


def population_stability_index(
    expected: Sequence[float] | FloatArray,
    actual: Sequence[float] | FloatArray,
    *,
    floor: float = EMPTY_BIN_FRACTION,
) -> float:
    """Compute the PSI of ``actual`` bin fractions against ``expected`` ones.

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    expected_array = np.asarray(expected, dtype=np.float64)
    actual_array = np.asarray(actual, dtype=np.float64)
    if expected_array.shape != actual_array.shape or expected_array.size == 0:
        msg = (
            f"expected has {expected_array.size} bins and actual {actual_array.size}; "
            "pass the same non-zero number of bins"
        )
        raise ValueError(msg)
    e = np.maximum(expected_array, floor)
    a = np.maximum(actual_array, floor)
    return float(np.sum((a - e) * np.log(a / e)))


def parse_feature_stats(raw: Mapping[str, object]) -> dict[str, FeatureBins]:
    """Pull the bin edges and fractions out of an artifact's ``feature_stats`` mapping.

    Features without ``bin_edges`` or ``bin_fractions`` are skipped, since a constant training
    column has no histogram to compare against.

    Raises:
        ValueError: a feature's bins are inconsistent (lengths or order).
    """
    bins: dict[str, FeatureBins] = {}
    for name, stats in raw.items():
        if not isinstance(stats, Mapping):
            continue
        edges = stats.get("bin_edges")
        fractions = stats.get("bin_fractions")
        if not isinstance(edges, list) or not isinstance(fractions, list) or not fractions:
            continue
        try:
            bins[name] = FeatureBins(
                edges=tuple(float(x) for x in edges), fractions=tuple(float(x) for x in fractions)
            )
        except ValueError as exc:
            msg = f"feature_stats[{name!r}] is invalid: {exc}"
            raise ValueError(msg) from exc
    return bins


def compute_feature_drift(frame: pd.DataFrame, bins: Mapping[str, FeatureBins]) -> pd.DataFrame:
    """Compute PSI for every feature that has training bins and a column in ``frame``.

    Returns:
        One row per feature with columns ``feature``, ``psi``, ``rows`` (non-NaN recent values)
        and ``status`` (``stable``, ``moderate`` or ``significant``), sorted by PSI, worst first.
        Empty when ``frame`` has no rows.
    """
    columns = ["feature", "psi", "rows", "status"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    records: list[dict[str, object]] = []
    for name, feature_bins in bins.items():
        if name not in frame.columns:
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        rows = int(np.count_nonzero(~np.isnan(values)))
        if rows == 0:
            continue
        psi = feature_psi(values, feature_bins)
        records.append({"feature": name, "psi": psi, "rows": rows, "status": classify_psi(psi)})
    result = pd.DataFrame.from_records(records, columns=columns)
    return result.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def feature_psi(values: FloatArray, feature_bins: FeatureBins) -> float:
    """Compute the PSI of one feature's recent values against its training bins.

    A feature that had a single value ``v`` in training is stored as ``edges == (v, v)`` with one
    bin. Clipping would put every recent value into that bin and always give 0, so such a feature
    is compared as two categories instead: equal to ``v`` (expected 1.0) and anything else
    (expected 0.0).
    """
    edges = feature_bins.edges
    if len(feature_bins.fractions) == 1 and edges[0] == edges[-1]:
        present = values[~np.isnan(values)]
        same = float(np.count_nonzero(present == edges[0])) / present.size if present.size else 0.0
        return population_stability_index((1.0, 0.0), (same, 1.0 - same))
    actual = bin_fractions(values, edges)
    return population_stability_index(feature_bins.fractions, actual)


def classify_psi(psi: float) -> str:
    """Name the usual PSI band: ``stable``, ``moderate`` or ``significant``."""
    if psi >= SIGNIFICANT_PSI:
        return "significant"
    if psi >= MODERATE_PSI:
        return "moderate"
    return "stable"
