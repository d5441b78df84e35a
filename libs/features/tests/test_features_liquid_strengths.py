"""Liquid volumes, strength denominators and long strength texts in the opioid MME."""

from __future__ import annotations

import pytest
from evidence_features import extract_features
from evidence_features._strengths import MAX_STRENGTH_CHARS, parse_strength


def _opioid_rx(*fills: tuple[str, str, str, str]) -> bytes:
    """Render one IntelRX report with a fill per (generic, strength, quantity, days supply)."""
    body = "".join(
        f"<DrugFill><FillDate>2024-03-0{index + 1}</FillDate>"
        f"<DrugGenericName>{generic}</DrugGenericName><DrugStrength>{strength}</DrugStrength>"
        f"<Quantity>{quantity}</Quantity><DaysSupply>{days}</DaysSupply></DrugFill>"
        for index, (generic, strength, quantity, days) in enumerate(fills)
    )
    return f"<IntelRXResponse><ReportDate>2024-03-16</ReportDate>{body}</IntelRXResponse>".encode()


def _mme_and_implausible(document: bytes) -> tuple[float, int]:
    vector = extract_features(None, document)
    implausible = sum(w.count for w in vector.warnings if w.kind == "implausible_value")
    return vector.as_dict()["RX_OPIOID_MAX_DAILY_MME"], implausible


@pytest.mark.parametrize(
    ("text", "volume_ml"),
    [
        ("5 MG/5 CC", 5.0),
        ("5 MG/5 MLS", 5.0),
        ("5 MG/5 MILLILITERS", 5.0),
        ("5 MG/5 MILLILITRES", 5.0),
        ("5 MG/1 MILLILITER", 1.0),
        ("5 MG/TSP", 5.0),
        ("5 MG PER TEASPOONFUL", 5.0),
        ("5 MG/2 TEASPOONS", 10.0),
        ("5 \uff2d\uff27/5 \uff2d\uff2c", 5.0),
        ("\uff15 MG\uff0f\uff15 ML", 5.0),
        ("5 MG/0.1 ML", 0.1),
        ("5 MG/1000 ML", 1000.0),
        ("5 MG/0.01 ML", None),
        ("5 MG/0.001 ML", None),
        ("5 MG/1001 ML", None),
        ("5 MG/0.01 TSP", None),
    ],
)
def test_volume_spellings_and_range(text: str, volume_ml: float | None) -> None:
    """Volumes in mL, cc and teaspoons read in mL. A volume outside 0.1-1,000 mL is None."""
    strength = parse_strength(text)
    assert strength is not None
    assert strength.per_volume
    assert strength.values == (5.0,)
    assert strength.volume_ml == volume_ml


@pytest.mark.parametrize(
    ("text", "unreadable"),
    [
        ("5 MG/ACT", True),
        ("100 MCG/SPRAY", True),
        ("5 MG/G", True),
        ("5 MG PER DOSE", True),
        ("5 MG/X ML", True),
        ("5 MG/5 X", True),
        ("5 MG/MG", True),
        ("2 MG/VIAL", True),
        ("5 MG/5 CL", True),
        # A volume, an hourly rate, a dispensed unit or the next ingredient is readable.
        ("5 MG/5 ML", False),
        ("20 MG/ML", False),
        ("25 MCG/HR", False),
        ("6 MG/24 HR", False),
        ("5 MG/TAB", False),
        ("5 MG PER TABLET", False),
        ("10 MG/325 MG", False),
        ("10MG/325MG", False),
        ("5/325", False),
        ("ACETAMINOPHEN 325 MG / OXYCODONE HYDROCHLORIDE 5 MG ORAL TABLET", False),
        ("OXYCODONE/APAP 5/325", False),
        ("HYDROCODONE 10MG/ACETAMINOPHEN 325MG", False),
        ("OXYCODONE 5 MG/325 APAP TAB", False),
        ("HYDROCODONE-APAP 5-325 TABLET", False),
        ("2%", False),
    ],
)
def test_denominator_readable(text: str, unreadable: bool) -> None:
    """An amount per something other than a volume, hour or dispensed unit is unreadable."""
    strength = parse_strength(text)
    assert strength is not None
    assert strength.unreadable == unreadable


def test_long_strength_text_unreadable() -> None:
    """A text up to the length bound is read; a longer one is unreadable without values."""
    label = "HYDROCODONE-APAP 5-325 TABLET"
    at_bound = label + " " * (MAX_STRENGTH_CHARS - len(label))
    readable = parse_strength(at_bound)
    assert readable is not None
    assert readable.values == (5.0, 325.0)
    assert not readable.unreadable

    too_long = parse_strength(at_bound + " ")
    assert too_long is not None
    assert too_long.unreadable
    assert too_long.values == ()

    huge = parse_strength("5 MG " * 200_000)
    assert huge is not None
    assert huge.unreadable


@pytest.mark.parametrize(
    "strength",
    ["5 MG/5 CC", "5 MG/5 MLS", "5 MG/5 MILLILITERS", "5 MG/TSP", "5 \uff2d\uff27/5 \uff2d\uff2c"],
)
def test_volume_spelling_mme(strength: str) -> None:
    """Oxycodone 1 mg/mL in any volume spelling, 300 mL over 30 days, is 15 MME."""
    mme, implausible = _mme_and_implausible(_opioid_rx(("OXYCODONE HCL", strength, "300", "30")))
    assert mme == pytest.approx(15.0)
    assert implausible == 0


@pytest.mark.parametrize(
    ("generic", "strength", "quantity", "days"),
    [
        # 500 mg/mL from a volume below 0.1 mL.
        ("OXYCODONE HCL", "5 MG/0.01 ML", "300", "30"),
        # 10,000,000 mg/mL would give 4.7e12 MME.
        ("METHADONE", "10000 MG/0.001 ML", "100000", "1"),
        # 20,000 mg/mL from a readable volume is outside the strength range.
        ("METHADONE", "10000 MG/0.5 ML", "100", "1"),
        ("OXYCODONE HCL", "5 MG/ACT", "300", "30"),
        ("OXYCODONE HCL", "5 MG/G", "300", "30"),
        ("OXYCODONE HCL", "5 MG/5 X", "300", "30"),
        ("OXYCODONE HCL", "5 MG " * 300, "300", "30"),
    ],
)
def test_unreadable_liquid_strength_skipped(
    generic: str, strength: str, quantity: str, days: str
) -> None:
    """An implausible volume, per-mL amount or denominator adds no MME and one warning."""
    mme, implausible = _mme_and_implausible(_opioid_rx((generic, strength, quantity, days)))
    assert mme == 0.0
    assert implausible == 1


def test_max_per_ml_strength_at_bound() -> None:
    """1,000 mg in 0.1 mL is 10,000 mg/mL, the top of the range, and still counts."""
    mme, implausible = _mme_and_implausible(_opioid_rx(("METHADONE", "1000 MG/0.1 ML", "10", "1")))
    assert mme == pytest.approx(10_000 * 10 * 4.7)
    assert implausible == 0


def test_unreadable_fill_leaves_other_fills() -> None:
    """Among several fills, only the unreadable ones are skipped and counted."""
    document = _opioid_rx(
        ("OXYCODONE HCL", "5 MG/0.01 ML", "300", "30"),
        ("OXYCODONE HCL", "5 MG/5 CC", "300", "30"),
        ("METHADONE", "10 MG/ACT", "90", "30"),
        ("TRAMADOL HCL", "50 MG/TAB", "120", "30"),
    )
    mme, implausible = _mme_and_implausible(document)
    assert mme == pytest.approx(40.0)
    assert implausible == 2


def test_no_opioid_fill_no_warning() -> None:
    """A non-opioid with an unreadable strength is never read, so it raises no warning."""
    mme, implausible = _mme_and_implausible(_opioid_rx(("METFORMIN HCL", "5 MG/ACT", "30", "30")))
    assert mme == 0.0
    assert implausible == 0
