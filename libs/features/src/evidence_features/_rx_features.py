"""Rx features, columns 31-90 of the spec.

Every feature except RX_DUPLICATE_FILLS reads the de-duplicated fills. Interval and window
features sort once and sweep, so a report with n fills costs O(n log n).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from evidence_features._dates import UNPARSEABLE
from evidence_features._drugs import DrugCatalog, opioid_dose
from evidence_features._records import RxFill, RxReport
from evidence_features._spec import FEATURE_NAMES
from evidence_features._window import (
    DAYS_6M,
    DAYS_12M,
    DAYS_24M,
    DAYS_60M,
    MAX_RECENCY_DAYS,
)

__all__ = ["RxSummary", "deduplicate_fills", "fill_rx_features"]

_I = {name: index for index, name in enumerate(FEATURE_NAMES)}
_MAX_DAYS_SUPPLY = 365.0
_CHRONIC_FILLS = 3
_CHRONIC_DAYS = 90.0
_ACUTE_DAYS = 30.0
_ACTIVE_SUPPLY_FACTOR = 1.5
_EARLY_REFILL_FRACTION = 0.75
_MPE_WINDOW_DAYS = 90
_MPE_MINIMUM = 5
_POLYPHARMACY_DRUGS = 5
_UNCLASSIFIED_SEVERITY = 1
_CLASS_FEATURES = (
    "OPIOID", "BENZO", "SEDATIVE_HYPNOTIC", "GABAPENTINOID", "STIMULANT_ADHD", "SUD_TREATMENT",
    "SMOKING_CESSATION", "INSULIN", "NONINSULIN_ANTIDIABETIC", "ANTICOAGULANT", "ANTIPLATELET",
    "STATIN", "ANTIANGINAL", "ANTIARRHYTHMIC", "HEART_FAILURE", "LOOP_DIURETIC", "ANTIPSYCHOTIC",
    "ANTIDEPRESSANT", "LITHIUM", "ANTIEPILEPTIC", "DEMENTIA_PARKINSON", "COPD_ASTHMA",
    "SYSTEMIC_STEROID", "HIV_ANTIRETROVIRAL", "HEP_C", "ONCOLOGY", "IMMUNOSUPPRESSANT", "CKD_ESRD",
)  # fmt: skip
_CLASS_INDEXES = tuple((class_id, _I["RX_DRUG_" + class_id]) for class_id in _CLASS_FEATURES)


@dataclass(frozen=True, slots=True)
class RxSummary:
    """Rx-side counts the combined features and the warnings need."""

    classes: frozenset[str]
    undated: int
    unparseable: int
    future: int
    unknown_drugs: int


def _merge(kept: RxFill, other: RxFill) -> RxFill:
    # Fields outside the key take the smallest non-missing value of the group, so the merged
    # fill keeps every detail and does not depend on fill order.
    def pick(left: str | None, right: str | None) -> str | None:
        if left is None or right is None:
            return left if right is None else right
        return min(left, right)

    # An unparseable written date (ordinal 0) is the smallest, so it is counted when any
    # copy of the fill carries one.
    written = [day for day in (kept.written_date, other.written_date) if day is not None]
    return kept._replace(
        prescriber=pick(kept.prescriber, other.prescriber),
        specialty=pick(kept.specialty, other.specialty),
        strength_text=pick(kept.strength_text, other.strength_text),
        written_date=min(written) if written else None,
    )


def deduplicate_fills(fills: list[RxFill]) -> list[RxFill]:
    """Merge fills identical on (drug, fill date, quantity, days supply, pharmacy).

    Two unparseable fill dates are identical only when their texts are, and two missing fill
    dates are identical. Of a merged group each other field keeps its smallest non-missing
    value, so the result does not depend on fill order.
    """
    merged: dict[tuple[object, ...], RxFill] = {}
    for fill in fills:
        _, drug_key, day, quantity, days_supply, _, _, pharmacy, _, date_text, _ = fill
        # NOTE: two missing fill dates compare equal, so repeated undated fills of one drug at
        # one pharmacy merge. The reference does not say whether missing dates are identical.
        key = (drug_key, day, date_text, quantity, days_supply, pharmacy)
        kept = merged.get(key)
        merged[key] = fill if kept is None else _merge(kept, fill)
    return list(merged.values())


def _daily_mme(fill: RxFill) -> float | None:
    drug = fill.drug
    if fill.strength_text is None:
        return None
    dose = opioid_dose(drug, fill.strength_text)
    if dose is None:
        return None
    value, unit = dose
    # The reader drops a strength whose opioid number is unreadable, so value is None only
    # for fills built without the reader.
    if value is None:
        return None
    if unit in ("MCG/HR", "MCG/H"):
        # Patches: the factor is per mcg/h of patch strength (CDC 2022), independent of count.
        return (
            value * drug.mme_factor
            if drug.ingredients[drug.opioid_position] == "FENTANYL"
            else None
        )
    if drug.ingredients[drug.opioid_position] == "FENTANYL":
        return None
    if unit == "MCG":
        value /= 1000.0
    elif unit not in ("MG", ""):
        return None
    quantity, days = fill.quantity, fill.days_supply
    if not quantity or not days:
        return None
    # opioid_dose gives a liquid's strength per mL, the unit its quantity counts in, so the
    # same product serves tablets and liquids: 1 mg/mL x 300 mL / 30 days x 1.5 = 15.
    # NOTE: the reader takes no quantity unit, so a liquid dispensed in another unit is misread.
    return value * quantity / days * drug.mme_factor


def _merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _intervals_overlap(left: list[tuple[int, int]], right: list[tuple[int, int]]) -> bool:
    # Both lists are merged half-open intervals [start, end) sorted by start.
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i][0] < right[j][1] and right[j][0] < left[i][1]:
            return True
        if left[i][1] <= right[j][1]:
            i += 1
        else:
            j += 1
    return False


def _has_multiple_provider_episode(events: list[tuple[int, str | None, str | None]]) -> bool:
    # Sliding 90-day window over (day, prescriber, pharmacy) sorted by day.
    distinct_prescribers = {prescriber for _, prescriber, _ in events if prescriber}
    distinct_pharmacies = {pharmacy for _, _, pharmacy in events if pharmacy}
    if len(distinct_prescribers) < _MPE_MINIMUM or len(distinct_pharmacies) < _MPE_MINIMUM:
        return False
    # Plain dicts rather than Counter: Counter's __delitem__ runs in Python.
    prescribers: dict[str, int] = {}
    pharmacies: dict[str, int] = {}
    left = 0
    for day, prescriber, pharmacy in events:
        if prescriber:
            prescribers[prescriber] = prescribers.get(prescriber, 0) + 1
        if pharmacy:
            pharmacies[pharmacy] = pharmacies.get(pharmacy, 0) + 1
        while day - events[left][0] >= _MPE_WINDOW_DAYS:
            _, old_prescriber, old_pharmacy = events[left]
            if old_prescriber:
                remaining = prescribers[old_prescriber] - 1
                if remaining:
                    prescribers[old_prescriber] = remaining
                else:
                    del prescribers[old_prescriber]
            if old_pharmacy:
                remaining = pharmacies[old_pharmacy] - 1
                if remaining:
                    pharmacies[old_pharmacy] = remaining
                else:
                    del pharmacies[old_pharmacy]
            left += 1
        if len(prescribers) >= _MPE_MINIMUM and len(pharmacies) >= _MPE_MINIMUM:
            return True
    return False


def _last_supply(fills: list[tuple[int, float]]) -> float:
    # Return the largest supply among the fills on the last day. `fills` is sorted by day, so
    # those fills sit at the end and the backward scan stops at the first earlier day.
    last_day, supply = fills[-1]
    for index in range(len(fills) - 2, -1, -1):
        day, other = fills[index]
        if day != last_day:
            break
        if other > supply:
            supply = other
    return supply


def _proportion_days_covered(fills: list[tuple[int, float]], as_of: int) -> float | None:
    # fills: (day, days supply) sorted by day. The period runs from the first fill to
    # min(as-of, last fill + its supply). Covered days are the union of [day, day + supply),
    # counted in one sweep because the fills are sorted by start day.
    first = fills[0][0]
    last_day = fills[-1][0]
    last_supply = _last_supply(fills)
    end = min(as_of, last_day + round(last_supply))
    if end <= first:
        return None
    covered = 0
    covered_until = first
    for day, supply in fills:
        stop = day + round(supply)
        if stop > end:
            stop = end
        start = day if day > covered_until else covered_until
        if stop > start:
            covered += stop - start
            covered_until = stop
    return covered / (end - first)


def fill_rx_features(
    values: list[float], report: RxReport, as_of: int, catalog: DrugCatalog
) -> RxSummary:
    """Write the 60 Rx features into `values` (spec order) and return counts for later use."""
    fills = deduplicate_fills(report.fills)
    total = len(fills)
    values[_I["RX_TOTAL_FILLS"]] = total
    values[_I["RX_DUPLICATE_FILLS"]] = len(report.fills) - total
    if report.vendor_score is not None:
        values[_I["RX_VENDOR_SCORE"]] = report.vendor_score
    if not fills:
        return RxSummary(frozenset(), 0, 0, 0, 0)

    # One pass over the fills collects everything the per-fill features need, because this
    # runs on every request; the sweeps below read the lists it builds.
    drug_keys: set[str] = set()
    prescribers: set[str] = set()
    pharmacies: set[str] = set()
    specialties: set[str] = set()
    classes: set[str] = set()
    backbone: set[str] = set()
    ribavirin = interferon = unclassified = False
    supplies: list[float] = []
    fill_counts: dict[str, int] = {}
    supply_totals: dict[str, float] = {}
    single_supply: dict[str, float] = {}
    dated: list[tuple[int, RxFill, float]] = []
    undated = unparseable = future = unknown = 0
    latest_allowed = as_of + 1
    for fill in fills:
        drug, drug_key, day, _, days, _, prescriber, pharmacy, specialty, _, written = fill
        if drug_key:
            drug_keys.add(drug_key)
        if prescriber:
            prescribers.add(prescriber)
        if pharmacy:
            pharmacies.add(pharmacy)
        if specialty:
            specialties.add(specialty)
        if drug.classes:
            classes |= drug.classes
        else:
            unclassified = True
        if drug.arv_backbone:
            backbone |= drug.arv_backbone
        if drug.ribavirin:
            ribavirin = True
        if drug.interferon:
            interferon = True
        if drug.unknown or drug_key is None:
            unknown += 1
        # Days supply capped at one year; then classify_date, inlined.
        supply = 0.0 if days is None else days
        if supply > _MAX_DAYS_SUPPLY:
            supply = _MAX_DAYS_SUPPLY
        supplies.append(supply)
        if drug_key is not None:
            fill_counts[drug_key] = fill_counts.get(drug_key, 0) + 1
            supply_totals[drug_key] = supply_totals.get(drug_key, 0.0) + supply
            single_supply[drug_key] = supply
        # The written date is read only for this count.
        if written == UNPARSEABLE:
            unparseable += 1
        # Undated and future-dated fills stay out of every date-based feature.
        if day is None:
            undated += 1
        elif day == UNPARSEABLE:
            undated += 1
            unparseable += 1
        elif day > latest_allowed:
            future += 1
        else:
            dated.append((day if day < as_of else as_of, fill, supply))
    dated.sort(key=_first)
    if len(backbone) >= catalog.hiv_backbone_minimum:
        classes.add("HIV_ANTIRETROVIRAL")
    if ribavirin and interferon:
        classes.add("HEP_C")

    values[_I["RX_UNIQUE_DRUGS"]] = len(drug_keys)
    values[_I["RX_UNIQUE_PRESCRIBERS"]] = len(prescribers)
    values[_I["RX_UNIQUE_PHARMACIES"]] = len(pharmacies)
    values[_I["RX_UNIQUE_SPECIALTIES"]] = len(specialties)
    values[_I["RX_SPECIALTY_ONCOLOGY"]] = float(
        any("ONCOL" in s or "HEMATOL" in s for s in specialties)
    )
    values[_I["RX_SPECIALTY_PSYCHIATRY"]] = float(any("PSYCHIAT" in s for s in specialties))

    values[_I["RX_UNIQUE_CLASSES"]] = len(classes)
    for class_id, index in _CLASS_INDEXES:
        values[index] = 1.0 if class_id in classes else 0.0
    values[_I["RX_ANTIHYPERTENSIVE_CLASS_COUNT"]] = len(classes & catalog.antihypertensive_classes)
    severity = max((catalog.class_severity[c] for c in classes), default=0)
    if unclassified:
        severity = max(severity, _UNCLASSIFIED_SEVERITY)
    values[_I["RX_MAX_CLASS_SEVERITY"]] = severity

    values[_I["RX_TOTAL_DAYS_SUPPLY"]] = int(sum(supplies))
    _fill_window_features(values, dated, as_of)
    _fill_drug_features(values, fill_counts, supply_totals, single_supply, dated, as_of)
    _fill_controlled_features(values, dated, as_of, catalog)
    return RxSummary(frozenset(classes), undated, unparseable, future, unknown)


def _first(item: tuple[int, RxFill, float]) -> int:
    return item[0]


def _fill_window_features(
    values: list[float], dated: list[tuple[int, RxFill, float]], as_of: int
) -> None:
    # One sweep; the windows nest (12 < 24 < 60 months) and every dated fill has age >= 0.
    fills_12m = fills_24m = fills_60m = 0
    drugs_12m: set[str] = set()
    first_seen: dict[str, int] = {}
    for day, fill, _ in dated:
        drug_key = fill.drug_key
        age = as_of - day
        if age < DAYS_60M:
            fills_60m += 1
            if age < DAYS_24M:
                fills_24m += 1
                if age < DAYS_12M:
                    fills_12m += 1
                    if drug_key:
                        drugs_12m.add(drug_key)
        if drug_key and drug_key not in first_seen:
            first_seen[drug_key] = day

    values[_I["RX_FILLS_LAST_12M"]] = fills_12m
    values[_I["RX_FILLS_LAST_24M"]] = fills_24m
    values[_I["RX_FILLS_LAST_60M"]] = fills_60m
    values[_I["RX_UNIQUE_DRUGS_LAST_12M"]] = len(drugs_12m)
    values[_I["RX_POLYPHARMACY_5"]] = 1.0 if len(drugs_12m) >= _POLYPHARMACY_DRUGS else 0.0
    if not dated:
        return
    earliest, latest = dated[0][0], dated[-1][0]
    values[_I["RX_DAYS_SINCE_LAST_FILL"]] = min(as_of - latest, MAX_RECENCY_DAYS)
    span = latest - earliest
    values[_I["RX_HISTORY_SPAN_DAYS"]] = span
    if span > DAYS_12M:
        values[_I["RX_NEW_DRUGS_LAST_6M"]] = sum(
            1 for day in first_seen.values() if as_of - day < DAYS_6M
        )


def _fill_drug_features(
    values: list[float],
    fill_counts: dict[str, int],
    supply_totals: dict[str, float],
    single_supply: dict[str, float],
    dated: list[tuple[int, RxFill, float]],
    as_of: int,
) -> None:
    # Per drug key over all fills: count, summed supply and the supply of its last fill.
    chronic = {
        key
        for key, count in fill_counts.items()
        if count >= _CHRONIC_FILLS or supply_totals[key] >= _CHRONIC_DAYS
    }
    values[_I["RX_CHRONIC_DRUG_COUNT"]] = len(chronic)
    values[_I["RX_ACUTE_ONLY_DRUG_COUNT"]] = sum(
        1 for key, count in fill_counts.items() if count == 1 and single_supply[key] <= _ACUTE_DAYS
    )

    by_drug: dict[str, list[tuple[int, float]]] = {}
    for day, fill, supply in dated:
        if fill.drug_key is not None:
            by_drug.setdefault(fill.drug_key, []).append((day, supply))
    active = 0
    ratios: list[float] = []
    for key, drug_fills in by_drug.items():
        last_day = drug_fills[-1][0]
        last_supply = _last_supply(drug_fills)
        if last_day + _ACTIVE_SUPPLY_FACTOR * last_supply >= as_of:
            active += 1
        if key in chronic:
            ratio = _proportion_days_covered(drug_fills, as_of)
            if ratio is not None:
                ratios.append(ratio)
    values[_I["RX_ACTIVE_DRUGS_ASOF"]] = active
    if ratios:
        values[_I["RX_MEAN_PDC_CHRONIC"]] = sum(ratios) / len(ratios)


def _fill_controlled_features(
    values: list[float],
    dated: list[tuple[int, RxFill, float]],
    as_of: int,
    catalog: DrugCatalog,
) -> None:
    opioid_fills_12m = 0
    opioid_supply_12m = 0.0
    opioid_prescribers: set[str] = set()
    max_mme = 0.0
    opioid_intervals: list[tuple[int, int]] = []
    benzo_intervals: list[tuple[int, int]] = []
    controlled_events: list[tuple[int, str | None, str | None]] = []
    controlled_by_drug: dict[str, list[tuple[int, float]]] = {}
    controlled_classes = catalog.controlled_classes
    for day, fill, supply in dated:
        classes = fill.drug.classes
        if not classes:
            continue
        if "OPIOID" in classes:
            age = as_of - day
            if age < DAYS_12M:
                opioid_fills_12m += 1
                opioid_supply_12m += supply
                if fill.prescriber:
                    opioid_prescribers.add(fill.prescriber)
            if age < DAYS_24M:
                mme = _daily_mme(fill)
                if mme is not None and mme > max_mme:
                    max_mme = mme
            if supply >= 1:
                opioid_intervals.append((day, day + round(supply)))
        if "BENZO" in classes and supply >= 1:
            benzo_intervals.append((day, day + round(supply)))
        if not classes.isdisjoint(controlled_classes):
            controlled_events.append((day, fill.prescriber, fill.pharmacy))
            if fill.drug_key is not None:
                controlled_by_drug.setdefault(fill.drug_key, []).append((day, supply))

    values[_I["RX_OPIOID_FILLS_12M"]] = opioid_fills_12m
    values[_I["RX_OPIOID_DAYS_SUPPLY_12M"]] = int(opioid_supply_12m)
    values[_I["RX_OPIOID_MAX_DAILY_MME"]] = max_mme
    values[_I["RX_OPIOID_PRESCRIBERS_12M"]] = len(opioid_prescribers)
    concurrent = _intervals_overlap(
        _merge_intervals(opioid_intervals), _merge_intervals(benzo_intervals)
    )
    values[_I["RX_CONCURRENT_OPIOID_BENZO"]] = 1.0 if concurrent else 0.0

    early = 0
    for drug_fills in controlled_by_drug.values():
        drug_fills.sort()
        for (previous_day, previous_supply), (day, _) in pairwise(drug_fills):
            if (
                previous_supply > 0
                and day - previous_day < _EARLY_REFILL_FRACTION * previous_supply
            ):
                early += 1
    values[_I["RX_CONTROLLED_EARLY_REFILLS"]] = early
    values[_I["RX_MPE_FLAG"]] = 1.0 if _has_multiple_provider_episode(controlled_events) else 0.0
