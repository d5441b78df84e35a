"""MIB records that follow from a latent health state.

A record exists only when the applicant applied to a member company within the seven-year
retention period and that company coded a finding, because standard approvals leave no record.
Try records belong to somebody else with similar identifying data, so their codes are random.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from evidence_synthetic._health import CONDITION_BY_NAME, HealthState
from evidence_synthetic._mib_codes import MIB_CODE_CATEGORIES, UNMAPPED_BASES, base_for, make_code
from evidence_synthetic._parties import CARRIER_CODES, pick

__all__ = ["Build", "MibHistory", "MibRecord", "build_mib_history", "severity_level"]

_RETENTION_DAYS = 7 * 365
_LINES_OF_BUSINESS = ("Life", "Life", "Life", "Health", "Disability Income")
_ALL_BASES = tuple(MIB_CODE_CATEGORIES)


@dataclass(frozen=True, slots=True)
class Build:
    """Height, weight and BMI as a carrier extension may report them."""

    height_in: int
    weight_lb: int
    bmi: float


@dataclass(frozen=True, slots=True)
class MibRecord:
    """One earlier report by a member company: match type, company, date and codes."""

    reply_type: str
    company: str
    submit_date: date | None
    codes: tuple[str, ...]
    line_of_business: str = "Life"
    build: Build | None = None


@dataclass(frozen=True, slots=True)
class MibHistory:
    """All MIB records of one applicant plus the insurance-activity inquiry count."""

    records: tuple[MibRecord, ...]
    inquiries_24m: int


def severity_level(severity: float) -> int:
    """Map a latent condition severity (about 1) to a code severity 1-3."""
    if severity < 0.8:
        return 1
    if severity < 1.3:
        return 2
    return 3


def _build(rng: np.random.Generator, bmi: float) -> Build:
    height = min(max(round(rng.normal(67.5, 3.8)), 58), 80)
    measured_bmi = bmi + rng.normal(0.0, 0.8)
    weight = round(measured_bmi * height * height / 703.0)
    return Build(height_in=height, weight_lb=weight, bmi=round(703.0 * weight / height**2, 1))


def _random_date(rng: np.random.Generator, as_of: date, max_days: int) -> date:
    return as_of - timedelta(days=int(rng.integers(1, max_days)))


def build_mib_history(rng: np.random.Generator, state: HealthState, as_of: date) -> MibHistory:
    """Build the MIB records and inquiry count for one applicant."""
    serious = any(CONDITION_BY_NAME[c].outcome_weight >= 0.8 for c in state.conditions)
    shopper = "opioid_misuse" in state.conditions or "alcohol_use" in state.conditions
    # Sicker applicants and those who shop for cover applied more often in the last seven years.
    prior_probability = 0.3
    if serious:
        prior_probability += 0.2
    if shopper:
        prior_probability += 0.2

    records: list[MibRecord] = []
    applications: list[tuple[str, date]] = []
    if rng.random() < prior_probability:
        count = 1 + int(rng.poisson(0.9 if shopper else 0.4))
        applications = [
            (pick(rng, CARRIER_CODES), _random_date(rng, as_of, _RETENTION_DAYS))
            for _ in range(count)
        ]

    if applications:
        codes_by_application: list[list[str]] = [[] for _ in applications]
        for name, severity in state.conditions.items():
            spec = CONDITION_BY_NAME[name]
            if not spec.mib_categories:
                continue
            for index in range(len(applications)):
                if rng.random() < spec.mib_probability * min(1.0, 0.6 + 0.4 * severity):
                    base = base_for(rng, pick(rng, spec.mib_categories), name)
                    code = make_code(rng, base, severity_level(severity))
                    codes_by_application[index].append(code)
        for (company, submitted), codes in zip(applications, codes_by_application, strict=True):
            if not codes:
                continue
            build = _build(rng, state.bmi) if rng.random() < 0.3 else None
            lob = pick(rng, _LINES_OF_BUSINESS)
            records.append(MibRecord("HIT", company, submitted, tuple(codes), lob, build))

    if rng.random() < 0.07:
        for _ in range(int(rng.integers(1, 3))):
            base = pick(rng, _ALL_BASES) if rng.random() < 0.9 else pick(rng, UNMAPPED_BASES)
            code = make_code(rng, base, int(rng.integers(1, 4)))
            submitted = _random_date(rng, as_of, _RETENTION_DAYS)
            records.append(MibRecord("TRY", pick(rng, CARRIER_CODES), submitted, (code,)))

    recent = sum(1 for _, submitted in applications if (as_of - submitted).days <= 730)
    inquiries = recent + int(rng.poisson(1.5 if shopper else 0.3))
    records.sort(key=lambda record: record.submit_date or as_of, reverse=True)
    return MibHistory(records=tuple(records), inquiries_24m=inquiries)
