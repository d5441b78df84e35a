"""Generate labelled MIB + Rx evidence pairs from latent health states."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from evidence_synthetic._catalog import DRUGS
from evidence_synthetic._fills import Fill, Providers, build_fills, make_fill
from evidence_synthetic._health import CONDITION_BY_NAME, HealthState, draw_health_state, sigmoid
from evidence_synthetic._mib_codes import MIB_CODE_CATEGORIES, make_code
from evidence_synthetic._mib_records import MibRecord, build_mib_history
from evidence_synthetic._mib_xml import (
    ACORD_ONLY_QUIRKS,
    MIB_QUIRKS,
    MIB_SHAPES,
    MibReport,
    render_mib,
)
from evidence_synthetic._parties import (
    CARRIER_CODES,
    make_person_name,
    make_pharmacy,
    make_prescriber,
    pick,
)
from evidence_synthetic._rx_xml import RX_QUIRKS, RX_SHAPES, RxReport, render_rx

__all__ = [
    "DEFAULT_EDGE_RATE",
    "EvidencePair",
    "generate_mib_report",
    "generate_pair",
    "generate_pairs",
    "generate_rx_report",
    "iter_pairs",
]

DEFAULT_EDGE_RATE = 0.08
# Application dates are drawn from this range when the caller gives no as-of date.
_AS_OF_FIRST = date(2022, 1, 1)
_AS_OF_DAYS = 4 * 365
_MIB_SHAPE_WEIGHTS = (0.62, 0.1, 0.1, 0.18)
_RX_SHAPE_WEIGHTS = (0.6, 0.2, 0.2)
_RX_COVERAGE_PROBABILITY = 0.85
_LOOKBACK_DAYS = 5 * 365


@dataclass(frozen=True, slots=True)
class EvidencePair:
    """One applicant's MIB and Rx reports with the outcome label.

    `latent_risk` is the probability that the label was drawn from. `conditions`, `edge_cases`
    and the two shapes describe how the pair was generated. They are meant for tests and
    analysis, never as model inputs.
    """

    policy_number: str
    mib_xml: bytes
    rx_xml: bytes
    as_of: date
    label: int
    latent_risk: float
    conditions: tuple[str, ...] = ()
    edge_cases: tuple[str, ...] = ()
    mib_shape: str = ""
    rx_shape: str = ""


def _pick_weighted(
    rng: np.random.Generator, options: Sequence[str], weights: Sequence[float]
) -> str:
    draw = rng.random()
    for option, weight in zip(options, weights, strict=True):
        draw -= weight
        if draw < 0:
            return option
    return options[-1]


def _draw_quirks(
    rng: np.random.Generator, rate: float, options: Sequence[str], excluded: frozenset[str]
) -> frozenset[str]:
    """With probability `rate`, pick one or two quirks (edge cases) for a document."""
    if rng.random() >= rate:
        return frozenset()
    allowed = [quirk for quirk in options if quirk not in excluded]
    count = 1 if rng.random() < 0.7 else 2
    picked = frozenset(allowed[int(i)] for i in rng.choice(len(allowed), size=count, replace=False))
    # An empty report has nothing left for another quirk to act on.
    return frozenset({"empty_report"}) if "empty_report" in picked else picked


def _birth_date(rng: np.random.Generator, age: int, as_of: date) -> date:
    return as_of - timedelta(days=age * 365 + int(rng.integers(0, 365)))


def _eligibility(
    rng: np.random.Generator, as_of: date
) -> tuple[tuple[date, date], tuple[tuple[date, date], ...]]:
    """Return the fill window and the eligibility periods (two when coverage had a gap).

    Coverage never reads the health state, so on its own it carries no outcome signal. Fills
    exist only inside the window, so a model reads coverage as the exposure behind the fill
    counts (docs/synthetic.md, "Rx coverage and the label").
    """
    years = 5.0 if rng.random() < 0.2 else float(rng.uniform(0.5, 4.0))
    begin = as_of - timedelta(days=round(years * 365))
    if rng.random() < 0.1 and (as_of - begin).days > 400:
        gap_start = begin + timedelta(days=int(rng.integers(60, (as_of - begin).days - 200)))
        gap_end = gap_start + timedelta(days=int(rng.integers(30, 150)))
        return (begin, as_of), ((begin, gap_start), (gap_end, as_of))
    return (begin, as_of), ((begin, as_of),)


def _vendor_score(rng: np.random.Generator, state: HealthState, fills: Sequence[Fill]) -> int:
    """Return a score 1-99 like a vendor Rx mortality score, from treated conditions only."""
    visible = {fill.condition for fill in fills} - {"acute"}
    signal = sum(
        CONDITION_BY_NAME[name].outcome_weight * state.conditions.get(name, 1.0) for name in visible
    )
    signal += 0.03 * (state.age - 45) + float(rng.normal(0.0, 0.5))
    return min(max(round(100 * sigmoid(-1.8 + signal)), 1), 99)


def _build_rx(
    rng: np.random.Generator,
    state: HealthState,
    as_of: date,
    names: tuple[str, str],
    birth_date: date,
    quirks: frozenset[str],
) -> RxReport:
    first, last = names
    order = f"ORD_{int(rng.integers(10**6, 10**7))}_001"
    if rng.random() >= _RX_COVERAGE_PROBABILITY:
        return RxReport(as_of, order, first, last, birth_date, state.sex, (), False, quirks=quirks)
    window, periods = _eligibility(rng, as_of)
    providers = Providers(rng, latin1="latin1" in quirks)
    fills = build_fills(rng, state, providers, window)
    if len(periods) == 2:
        gap_start, gap_end = periods[0][1], periods[1][0]
        fills = [fill for fill in fills if not gap_start < fill.fill_date < gap_end]
    return RxReport(
        as_of=as_of,
        order_reference=order,
        first_name=first,
        last_name=last,
        birth_date=birth_date,
        sex=state.sex,
        fills=tuple(fills),
        hit=True,
        eligibility=periods if rng.random() < 0.8 else (),
        vendor_score=_vendor_score(rng, state, fills) if rng.random() < 0.3 else None,
        therapeutic_class=bool(rng.random() < 0.15),
        quirks=quirks,
    )


def generate_pair(
    rng: np.random.Generator,
    *,
    as_of: date | None = None,
    edge_rate: float = DEFAULT_EDGE_RATE,
    policy_number: str | None = None,
) -> EvidencePair:
    """Generate one applicant: a latent health state, both reports and the outcome label.

    Args:
        rng: the generator all randomness comes from; the same state gives the same bytes.
        as_of: application date; drawn from 2022-2025 when None.
        edge_rate: probability that each document gets one or two edge cases (quirks).
        policy_number: drawn from `rng` when None.

    Raises:
        ValueError: if `edge_rate` is outside [0, 1].
    """
    if not 0.0 <= edge_rate <= 1.0:
        msg = f"edge_rate must be between 0 and 1, got {edge_rate!r}"
        raise ValueError(msg)
    if as_of is None:
        as_of = _AS_OF_FIRST + timedelta(days=int(rng.integers(0, _AS_OF_DAYS)))
    if policy_number is None:
        policy_number = f"SYN{int(rng.integers(0, 10**10)):010d}"

    state = draw_health_state(rng)
    mib_shape = _pick_weighted(rng, MIB_SHAPES, _MIB_SHAPE_WEIGHTS)
    rx_shape = _pick_weighted(rng, RX_SHAPES, _RX_SHAPE_WEIGHTS)
    mib_excluded = frozenset() if mib_shape.startswith("acord") else ACORD_ONLY_QUIRKS
    if mib_shape == "flat":
        mib_excluded |= {"missing_dates", "future_dates", "latin1"}
    mib_quirks = _draw_quirks(rng, edge_rate, MIB_QUIRKS, mib_excluded)
    rx_excluded = frozenset({"attributes"}) if rx_shape == "ncpdp" else frozenset()
    rx_quirks = _draw_quirks(rng, edge_rate, RX_QUIRKS, rx_excluded)

    names = make_person_name(rng, latin1="latin1" in mib_quirks | rx_quirks)
    birth_date = _birth_date(rng, state.age, as_of)
    rx_report = _build_rx(rng, state, as_of, names, birth_date, rx_quirks)
    history = build_mib_history(rng, state, as_of)
    mib_report = MibReport(
        as_of=as_of,
        first_name=names[0],
        last_name=names[1],
        birth_date=birth_date,
        records=history.records,
        inquiries_24m=history.inquiries_24m if rng.random() < 0.5 else None,
        quirks=mib_quirks,
    )
    mib_xml = render_mib(rng, mib_report, mib_shape)
    rx_xml = render_rx(rng, rx_report, rx_shape)

    risk = state.risk
    label = int(rng.random() < risk)
    edge_cases = tuple(sorted(f"mib:{q}" for q in mib_quirks)) + tuple(
        sorted(f"rx:{q}" for q in rx_quirks)
    )
    return EvidencePair(
        policy_number=policy_number,
        mib_xml=mib_xml,
        rx_xml=rx_xml,
        as_of=as_of,
        label=label,
        latent_risk=risk,
        conditions=tuple(state.conditions),
        edge_cases=edge_cases,
        mib_shape=mib_shape,
        rx_shape=rx_shape,
    )


def iter_pairs(
    n: int,
    *,
    seed: int = 0,
    edge_rate: float = DEFAULT_EDGE_RATE,
    as_of: date | None = None,
) -> Iterator[EvidencePair]:
    """Yield `n` pairs lazily. Pair i depends only on (seed, i), not on `n`.

    Policy numbers are `SYN-<seed>-<index>`, unique within a seed.
    """
    if n < 0:
        msg = f"n must be zero or more, got {n!r}"
        raise ValueError(msg)
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        yield generate_pair(
            np.random.default_rng(child),
            as_of=as_of,
            edge_rate=edge_rate,
            policy_number=f"SYN-{seed}-{index:08d}",
        )


def generate_pairs(
    n: int,
    *,
    seed: int = 0,
    edge_rate: float = DEFAULT_EDGE_RATE,
    as_of: date | None = None,
) -> list[EvidencePair]:
    """Generate `n` pairs reproducibly: the same seed gives byte-identical documents."""
    return list(iter_pairs(n, seed=seed, edge_rate=edge_rate, as_of=as_of))


def generate_rx_report(
    rng: np.random.Generator,
    n_fills: int,
    *,
    as_of: date = date(2024, 3, 16),
    shape: str = "intelrx",
    quirks: Sequence[str] = (),
) -> bytes:
    """Generate an Rx report with exactly `n_fills` fills over five years, for benchmarks.

    Fills draw on the whole drug catalogue, eight prescribers and four pharmacies; they carry
    no health-state meaning.
    """
    prescribers = [
        make_prescriber(rng, s)
        for s in (
            "FAMILY MEDICINE",
            "CARDIOLOGY",
            "PSYCHIATRY",
            "PAIN MEDICINE",
            "ENDOCRINOLOGY",
            "EMERGENCY MEDICINE",
            "HEMATOLOGY/ONCOLOGY",
            "DENTIST",
        )
    ]
    pharmacies = [make_pharmacy(rng) for _ in range(4)]
    drugs = list(DRUGS.values())
    fills = [
        make_fill(
            rng,
            drugs[int(rng.integers(len(drugs)))],
            fill_date=as_of - timedelta(days=int(rng.integers(0, _LOOKBACK_DAYS))),
            days_supply=int((7, 30, 30, 90)[int(rng.integers(4))]),
            prescriber=prescribers[int(rng.integers(len(prescribers)))],
            pharmacy=pharmacies[int(rng.integers(len(pharmacies)))],
        )
        for _ in range(n_fills)
    ]
    fills.sort(key=lambda fill: fill.fill_date, reverse=True)
    first, last = make_person_name(rng)
    report = RxReport(
        as_of=as_of,
        order_reference=f"ORD_{int(rng.integers(10**6, 10**7))}_001",
        first_name=first,
        last_name=last,
        birth_date=date(1970, 1, 1),
        sex="F",
        fills=tuple(fills),
        eligibility=((as_of - timedelta(days=_LOOKBACK_DAYS), as_of),),
        quirks=frozenset(quirks),
    )
    return render_rx(rng, report, shape)


def generate_mib_report(
    rng: np.random.Generator,
    n_records: int,
    *,
    as_of: date = date(2024, 3, 16),
    shape: str = "acord",
    quirks: Sequence[str] = (),
) -> bytes:
    """Generate an MIB reply with exactly `n_records` records (mostly Hit), for benchmarks."""
    bases = list(MIB_CODE_CATEGORIES)
    records = []
    for _ in range(n_records):
        codes = tuple(
            make_code(rng, bases[int(rng.integers(len(bases)))], int(rng.integers(1, 4)))
            for _ in range(int(rng.integers(1, 4)))
        )
        records.append(
            MibRecord(
                reply_type="HIT" if rng.random() < 0.85 else "TRY",
                company=pick(rng, CARRIER_CODES),
                submit_date=as_of - timedelta(days=int(rng.integers(1, 7 * 365))),
                codes=codes,
            )
        )
    first, last = make_person_name(rng)
    report = MibReport(
        as_of=as_of,
        first_name=first,
        last_name=last,
        birth_date=date(1970, 1, 1),
        records=tuple(records),
        inquiries_24m=int(rng.integers(0, 4)),
        quirks=frozenset(quirks),
    )
    return render_mib(rng, report, shape)
