"""Window, interval and provider-episode features on small hand-made reports."""

from __future__ import annotations

from datetime import date, timedelta

from evidence_features import extract_features

AS_OF = date(2024, 3, 16)


def _fill(
    day: date,
    generic: str,
    *,
    days: int = 30,
    prescriber: str = "1000000001",
    pharmacy: str = "0300001",
) -> str:
    return (
        f"<DrugFill><FillDate>{day.isoformat()}</FillDate><DrugGenericName>{generic}"
        f"</DrugGenericName><Quantity>30</Quantity><DaysSupply>{days}</DaysSupply>"
        f"<PrescriberNPI>{prescriber}</PrescriberNPI><PharmacyNCPDPID>{pharmacy}"
        "</PharmacyNCPDPID></DrugFill>"
    )


def _values(fills: list[str]) -> dict[str, float]:
    document = "<IntelRXResponse>" + "".join(fills) + "</IntelRXResponse>"
    return extract_features(None, document, as_of=AS_OF).as_dict()


def test_mpe_five_prescribers_five_pharmacies() -> None:
    """Five prescribers and five pharmacies for opioids within 90 days set RX_MPE_FLAG."""
    fills = [
        _fill(AS_OF - timedelta(days=10 * n), "OXYCODONE", prescriber=f"P{n}", pharmacy=f"R{n}")
        for n in range(5)
    ]
    assert _values(fills)["RX_MPE_FLAG"] == 1.0
    assert _values(fills)["XSRC_SUBSTANCE_SIGNAL"] == 1.0


def test_mpe_spread_over_more_than_90_days() -> None:
    """The same five providers spread over 120 days do not set RX_MPE_FLAG."""
    fills = [
        _fill(AS_OF - timedelta(days=30 * n), "OXYCODONE", prescriber=f"P{n}", pharmacy=f"R{n}")
        for n in range(5)
    ]
    assert _values(fills)["RX_MPE_FLAG"] == 0.0


def test_mpe_ignores_noncontrolled_drugs() -> None:
    """Five providers for a non-controlled drug do not set RX_MPE_FLAG."""
    fills = [
        _fill(AS_OF - timedelta(days=5 * n), "LISINOPRIL", prescriber=f"P{n}", pharmacy=f"R{n}")
        for n in range(5)
    ]
    assert _values(fills)["RX_MPE_FLAG"] == 0.0


def test_concurrent_needs_shared_day() -> None:
    """Opioid and benzodiazepine supplies that only touch end to start are not concurrent."""
    opioid_start = AS_OF - timedelta(days=60)
    touching = [
        _fill(opioid_start, "OXYCODONE", days=30),
        _fill(opioid_start + timedelta(days=30), "LORAZEPAM", days=30),
    ]
    overlapping = [
        _fill(opioid_start, "OXYCODONE", days=31),
        _fill(opioid_start + timedelta(days=30), "LORAZEPAM", days=30),
    ]
    assert _values(touching)["RX_CONCURRENT_OPIOID_BENZO"] == 0.0
    assert _values(overlapping)["RX_CONCURRENT_OPIOID_BENZO"] == 1.0


def test_early_refill_threshold() -> None:
    """A refill before 75 % of the previous 30-day supply (22.5 days) counts as early."""
    start = AS_OF - timedelta(days=100)
    early = [_fill(start, "ALPRAZOLAM"), _fill(start + timedelta(days=22), "ALPRAZOLAM")]
    on_time = [_fill(start, "ALPRAZOLAM"), _fill(start + timedelta(days=23), "ALPRAZOLAM")]
    assert _values(early)["RX_CONTROLLED_EARLY_REFILLS"] == 1.0
    assert _values(on_time)["RX_CONTROLLED_EARLY_REFILLS"] == 0.0


def test_window_edges() -> None:
    """A fill exactly 365 days old falls outside 12M; 364 days old falls inside."""
    inside = _values([_fill(AS_OF - timedelta(days=364), "LISINOPRIL")])
    outside = _values([_fill(AS_OF - timedelta(days=365), "LISINOPRIL")])
    assert inside["RX_FILLS_LAST_12M"] == 1.0
    assert outside["RX_FILLS_LAST_12M"] == 0.0
    assert outside["RX_FILLS_LAST_24M"] == 1.0


def test_recency_capped_at_3650() -> None:
    """Days since the last fill are capped at 3650."""
    values = _values([_fill(date(2001, 1, 1), "LISINOPRIL")])
    assert values["RX_DAYS_SINCE_LAST_FILL"] == 3650.0


def test_one_day_after_as_of_not_future() -> None:
    """A fill dated the day after the as-of date is not future-dated; two days after is."""
    tomorrow = _values([_fill(AS_OF + timedelta(days=1), "LISINOPRIL")])
    later = _values([_fill(AS_OF + timedelta(days=2), "LISINOPRIL")])
    assert (
        tomorrow["META_FUTURE_DATED_RECORDS"],
        tomorrow["RX_FILLS_LAST_12M"],
        tomorrow["RX_DAYS_SINCE_LAST_FILL"],
    ) == (0.0, 1.0, 0.0)
    assert (
        later["META_FUTURE_DATED_RECORDS"],
        later["RX_FILLS_LAST_12M"],
        later["RX_DAYS_SINCE_LAST_FILL"],
    ) == (1.0, 0.0, 3650.0)


def test_no_chronic_drug_pdc_default() -> None:
    """Without a chronic drug RX_MEAN_PDC_CHRONIC keeps its default of -1."""
    assert (
        _values([_fill(AS_OF - timedelta(days=3), "AMOXICILLIN", days=10)])["RX_MEAN_PDC_CHRONIC"]
        == -1.0
    )


def test_eligibility_without_periods_is_zero() -> None:
    """An eligibility block without usable periods gives 0 coverage days, absent gives -1."""
    with_block = "<IntelRXResponse><Eligibility/></IntelRXResponse>"
    assert extract_features(None, with_block, as_of=AS_OF).as_dict()["META_RX_COVERAGE_DAYS"] == 0.0
    without = "<IntelRXResponse><Result>NOHIT</Result></IntelRXResponse>"
    assert extract_features(None, without, as_of=AS_OF).as_dict()["META_RX_COVERAGE_DAYS"] == -1.0
