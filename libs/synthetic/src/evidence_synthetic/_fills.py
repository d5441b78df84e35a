"""Prescription fills that follow from a latent health state.

Chronic drugs refill on a schedule set by days supply and adherence; acute drugs appear as one
short fill. Opioid misuse shows as high-strength opioids from many prescribers and pharmacies,
early refills, cash payment and concurrent benzodiazepines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from evidence_synthetic._catalog import ACUTE_DRUGS, DRUGS, REGIMENS, Drug
from evidence_synthetic._health import CONDITION_BY_NAME, HealthState
from evidence_synthetic._parties import (
    Pharmacy,
    Prescriber,
    make_pharmacy,
    make_prescriber,
    pick,
)

__all__ = ["Fill", "Providers", "build_fills", "make_fill"]

_MAX_FILLS_PER_DRUG = 70
_COURSE_DRUGS = frozenset({"epclusa", "mavyret"})
_PAYMENT_TYPES = ("COMMERCIAL", "COMMERCIAL", "COMMERCIAL", "MEDICARE PART D", "MEDICAID")


@dataclass(frozen=True, slots=True)
class Fill:
    """One dispensing event as an Rx report lists it."""

    drug: Drug
    strength: str
    fill_date: date
    written_date: date
    quantity: float
    days_supply: int
    refill_number: int
    prescriber: Prescriber
    pharmacy: Pharmacy
    payment_type: str
    condition: str


class Providers:
    """The prescribers and pharmacies one applicant uses, reused across fills."""

    def __init__(self, rng: np.random.Generator, *, latin1: bool = False) -> None:
        self._rng = rng
        self._prescribers: dict[str, Prescriber] = {}
        self.usual_pharmacy = make_pharmacy(rng, latin1=latin1)
        self.second_pharmacy = make_pharmacy(rng)
        self.mail_pharmacy = make_pharmacy(rng, mail_order=True)

    def prescriber(self, specialty: str) -> Prescriber:
        """Return the applicant's prescriber of that specialty, creating one on first use."""
        known = self._prescribers.get(specialty)
        if known is None or self._rng.random() < 0.05:
            known = make_prescriber(self._rng, specialty)
            self._prescribers[specialty] = known
        return known

    def pharmacy(self, days_supply: int) -> Pharmacy:
        """Return the pharmacy for a fill. Most 90-day supplies go through mail order."""
        if days_supply >= 90 and self._rng.random() < 0.7:
            return self.mail_pharmacy
        return self.usual_pharmacy if self._rng.random() < 0.85 else self.second_pharmacy


def _quantity(drug: Drug, units_per_day: float, days_supply: int) -> float:
    if drug.package_quantity is not None:
        return drug.package_quantity * max(1, round(days_supply / 30))
    return float(max(1, round(units_per_day * days_supply)))


def _slot_probability(probability: float, severity: float) -> float:
    """Scale a regimen slot's probability with severity. A slot of probability 1 is always taken."""
    if probability >= 1.0:
        return 1.0
    return min(1.0, probability * (0.6 + 0.4 * severity))


def _pick_strength(rng: np.random.Generator, drug: Drug, severity: float) -> str:
    """Pick a label strength, higher for more severe disease."""
    strengths = drug.strengths
    if severity > 1.3:
        return strengths[-1]
    if severity < 0.8:
        return strengths[0]
    return strengths[int(rng.integers(len(strengths)))]


def make_fill(
    rng: np.random.Generator,
    drug: Drug,
    *,
    fill_date: date,
    days_supply: int,
    prescriber: Prescriber,
    pharmacy: Pharmacy,
    strength: str | None = None,
    refill_number: int = 0,
    condition: str = "acute",
    payment_type: str | None = None,
    units_per_day: float | None = None,
) -> Fill:
    """Build one fill. Quantity is daily units times days supply, or the package quantity."""
    units = units_per_day or drug.units_per_day[int(rng.integers(len(drug.units_per_day)))]
    # A refill repeats the original prescription, written before the first fill.
    written = fill_date - timedelta(days=int(rng.integers(0, 4)) + days_supply * refill_number)
    return Fill(
        drug=drug,
        strength=strength or drug.strengths[int(rng.integers(len(drug.strengths)))],
        fill_date=fill_date,
        written_date=written,
        quantity=_quantity(drug, units, days_supply),
        days_supply=days_supply,
        refill_number=refill_number,
        prescriber=prescriber,
        pharmacy=pharmacy,
        payment_type=payment_type or pick(rng, _PAYMENT_TYPES),
        condition=condition,
    )


def _chronic_fills(
    rng: np.random.Generator,
    drug: Drug,
    condition: str,
    severity: float,
    specialties: tuple[str, ...],
    providers: Providers,
    window: tuple[date, date],
) -> list[Fill]:
    start_of_window, as_of = window
    span = (as_of - start_of_window).days
    if rng.random() < 0.55 or span < 30:
        start = start_of_window + timedelta(days=int(rng.integers(0, 25)))
    else:
        start = start_of_window + timedelta(days=int(rng.integers(0, span - 14)))
    end = as_of
    if rng.random() < 0.15 and (as_of - start).days > 90:
        end = start + timedelta(days=int(rng.integers(60, (as_of - start).days)))

    days_supply = 90 if rng.random() < 0.4 else 30
    if drug.key in _COURSE_DRUGS:
        days_supply = 28
        end = min(end, start + timedelta(days=int(rng.integers(56, 84))))
    adherence = float(rng.beta(9.0, 1.5))
    strength = _pick_strength(rng, drug, severity)
    specialty = specialties[0] if rng.random() < 0.6 else pick(rng, specialties)
    prescriber = providers.prescriber(specialty)
    payment = pick(rng, _PAYMENT_TYPES)
    units = drug.units_per_day[int(rng.integers(len(drug.units_per_day)))]

    fills: list[Fill] = []
    day = start
    refill = 0
    while day <= end and len(fills) < _MAX_FILLS_PER_DRUG:
        pharmacy = providers.pharmacy(days_supply)
        fills.append(
            make_fill(
                rng,
                drug,
                fill_date=day,
                days_supply=days_supply,
                prescriber=prescriber,
                pharmacy=pharmacy,
                strength=strength,
                refill_number=refill,
                condition=condition,
                payment_type=payment,
                units_per_day=units,
            )
        )
        refill = 0 if refill >= 5 or (days_supply >= 90 and refill >= 3) else refill + 1
        gap = days_supply / adherence + rng.normal(0.0, 2.0)
        day += timedelta(days=max(1, round(gap)))
    return fills


def _acute_fill(
    rng: np.random.Generator,
    drug: Drug,
    specialties: tuple[str, ...],
    providers: Providers,
    window: tuple[date, date],
    condition: str,
) -> Fill:
    start_of_window, as_of = window
    span = max((as_of - start_of_window).days, 1)
    fill_date = start_of_window + timedelta(days=int(rng.integers(0, span)))
    days_supply = int((3, 5, 5, 7, 7, 10, 14)[int(rng.integers(7))])
    prescriber = providers.prescriber(pick(rng, specialties))
    return make_fill(
        rng,
        drug,
        fill_date=fill_date,
        days_supply=days_supply,
        prescriber=prescriber,
        pharmacy=providers.pharmacy(days_supply),
        condition=condition,
    )


def _misuse_fills(
    rng: np.random.Generator,
    severity: float,
    providers: Providers,
    window: tuple[date, date],
) -> list[Fill]:
    """Build the fills of an opioid-misuse episode over the last one to three years."""
    start_of_window, as_of = window
    regimen = REGIMENS["opioid_misuse"]
    episode_days = min(int(rng.integers(240, 1100)), (as_of - start_of_window).days)
    episode_start = as_of - timedelta(days=max(episode_days, 30))
    prescribers = [
        make_prescriber(rng, pick(rng, regimen.specialties))
        for _ in range(int(rng.integers(3, 7 + round(2 * severity))))
    ]
    pharmacies = [make_pharmacy(rng) for _ in range(int(rng.integers(2, 5 + round(2 * severity))))]
    pharmacies.append(providers.usual_pharmacy)

    fills: list[Fill] = []
    for slot in regimen.slots:
        if rng.random() >= _slot_probability(slot.probability, severity):
            continue
        drug = DRUGS[pick(rng, slot.drug_keys)]
        strength = drug.strengths[-1] if rng.random() < 0.6 else pick(rng, drug.strengths)
        day = episode_start + timedelta(days=int(rng.integers(0, 60)))
        while day <= as_of and len(fills) < 4 * _MAX_FILLS_PER_DRUG:
            days_supply = int((7, 10, 15, 30, 30, 30)[int(rng.integers(6))])
            fills.append(
                make_fill(
                    rng,
                    drug,
                    fill_date=day,
                    days_supply=days_supply,
                    prescriber=prescribers[int(rng.integers(len(prescribers)))],
                    pharmacy=pharmacies[int(rng.integers(len(pharmacies)))],
                    strength=strength,
                    condition="opioid_misuse",
                    payment_type="CASH" if rng.random() < 0.35 else None,
                )
            )
            early = rng.random() < 0.45
            factor = rng.uniform(0.4, 0.72) if early else rng.uniform(0.95, 1.6)
            day += timedelta(days=max(1, round(days_supply * factor)))

    if rng.random() < 0.3:
        treatment_start = as_of - timedelta(days=int(rng.integers(30, 200)))
        addiction = make_prescriber(rng, "ADDICTION MEDICINE")
        day = treatment_start
        while day <= as_of:
            fills.append(
                make_fill(
                    rng,
                    DRUGS["suboxone"],
                    fill_date=day,
                    days_supply=30,
                    prescriber=addiction,
                    pharmacy=providers.usual_pharmacy,
                    condition="opioid_misuse",
                )
            )
            day += timedelta(days=30 + int(rng.integers(0, 6)))
    if rng.random() < 0.2:
        fills.append(
            _acute_fill(
                rng,
                DRUGS["naloxone"],
                ("EMERGENCY MEDICINE",),
                providers,
                (episode_start, as_of),
                "opioid_misuse",
            )
        )
    return fills


def build_fills(
    rng: np.random.Generator,
    state: HealthState,
    providers: Providers,
    window: tuple[date, date],
) -> list[Fill]:
    """Build every fill dispensed to the applicant inside the eligibility window.

    Args:
        rng: the generator all randomness comes from.
        state: the applicant's latent health state.
        providers: the applicant's prescribers and pharmacies.
        window: first and last day of PBM coverage; the last day is the as-of date.
    """
    fills: list[Fill] = []
    for condition, severity in state.conditions.items():
        regimen = REGIMENS.get(condition)
        if regimen is None:
            continue
        if rng.random() >= CONDITION_BY_NAME[condition].treated_probability:
            continue
        if condition == "opioid_misuse":
            fills.extend(_misuse_fills(rng, severity, providers, window))
            continue
        slots = list(regimen.slots)
        if condition == "diabetes" and state.insulin_dependent:
            slots.extend(REGIMENS["insulin_dependent"].slots)
        for slot in slots:
            if rng.random() >= _slot_probability(slot.probability, severity):
                continue
            for key in (pick(rng, slot.drug_keys), *slot.companions):
                drug = DRUGS[key]
                if slot.chronic:
                    fills.extend(
                        _chronic_fills(
                            rng, drug, condition, severity, regimen.specialties, providers, window
                        )
                    )
                else:
                    for _ in range(int(rng.integers(1, 4))):
                        fills.append(
                            _acute_fill(
                                rng, drug, regimen.specialties, providers, window, condition
                            )
                        )

    years = (window[1] - window[0]).days / 365.25
    rate = max(0.15, 0.5 + 0.015 * (state.age - 40) + 0.25 * state.frailty)
    for _ in range(int(rng.poisson(rate * years))):
        key, specialties = ACUTE_DRUGS[int(rng.integers(len(ACUTE_DRUGS)))]
        fills.append(_acute_fill(rng, DRUGS[key], specialties, providers, window, "acute"))

    fills.sort(key=lambda fill: fill.fill_date, reverse=True)
    return fills
