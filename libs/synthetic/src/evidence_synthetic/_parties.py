"""Made-up people, prescribers, pharmacies and carriers.

Every name is obviously fictitious. NPIs carry a valid Luhn check digit (so validators accept them)
but are drawn at random, and NCPDP pharmacy ids and carrier codes are invented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CARRIER_CODES",
    "Pharmacy",
    "Prescriber",
    "make_npi",
    "make_person_name",
    "make_pharmacy",
    "make_prescriber",
    "npi_check_digit",
    "pick",
]

FIRST_NAMES = (
    "ALEX",
    "JORDAN",
    "TAYLOR",
    "MORGAN",
    "CASEY",
    "RILEY",
    "JAMIE",
    "AVERY",
    "QUINN",
    "DREW",
    "SAM",
    "ROBIN",
    "LEE",
    "DANA",
    "KELLY",
    "TERRY",
    "CHRIS",
    "PAT",
    "SHAWN",
    "BLAKE",
)
LAST_NAMES = (
    "SAMPLE",
    "EXAMPLE",
    "TESTCASE",
    "PLACEHOLDER",
    "FICTIVE",
    "MOCKINGTON",
    "DUMMYFIELD",
    "SYNTHETICA",
    "NOTAPERSON",
    "FAKEWORTH",
    "TESTWELL",
    "DEMOSTEIN",
    "PRETENDSON",
    "IMAGINARY",
)
# Latin-1 names for the ISO-8859-1 edge case; each character exists in that encoding.
LATIN1_FIRST_NAMES = ("JOSÉ", "RENÉE", "ZOË", "FRANÇOIS", "NÚRIA", "SØREN")
LATIN1_LAST_NAMES = ("MUÑOZ-EJEMPLO", "FICTÍCIA", "PEÑA-MUESTRA", "DÉMO", "TESTÅRD")

_PHARMACY_NAMES = (
    "CORNER DRUG & WELLNESS",
    "MAIN STREET PHARMACY",
    "RIVERSIDE APOTHECARY",
    "SYNTHMART PHARMACY",
    "HILLTOP CHEMISTS",
    "VALLEY CARE PHARMACY",
    "PLACEHOLDER RX",
    "MOCK & SONS DRUGS",
    "LAKEVIEW SPECIALTY PHARMACY",
    "EXAMPLE HEALTH MART",
    "TEST DRIVE-THRU RX",
)
LATIN1_PHARMACY_NAMES = ("FARMACIA LA ESPAÑOLA", "PHARMACIE DU CÔTÉ")
_MAIL_ORDER_NAMES = ("NORTHGATE MAIL ORDER RX", "EXAMPLE HOME DELIVERY PHARMACY")

# Invented three-character member-company symbols, the same shape as the legacy `Csy` field.
CARRIER_CODES = (
    "XA1",
    "QB7",
    "ZC3",
    "KD9",
    "MT4",
    "WP2",
    "LR8",
    "JN5",
    "VH6",
    "TG0",
    "YF3",
    "NE7",
)


@dataclass(frozen=True, slots=True)
class Prescriber:
    """A prescriber with a Luhn-valid but random NPI and a specialty in feed spelling."""

    npi: str
    first_name: str
    last_name: str
    specialty: str

    @property
    def display_name(self) -> str:
        """Name as Rx feeds print it, last name first."""
        return f"{self.last_name}, {self.first_name}"


@dataclass(frozen=True, slots=True)
class Pharmacy:
    """A dispensing pharmacy with a seven-digit NCPDP id and an NPI."""

    ncpdp_id: str
    npi: str
    name: str


def pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    """Pick one option uniformly, faster than `rng.choice` on a tuple of strings."""
    return options[int(rng.integers(len(options)))]


def npi_check_digit(first_nine: str) -> str:
    """Return the Luhn check digit of an NPI, computed over `80840` plus the first nine digits."""
    digits = [8, 0, 8, 4, 0, *(int(d) for d in first_nine)]
    total = 0
    # Luhn from the right of the payload: the rightmost payload digit sits next to the check
    # digit, so it and every second digit leftwards are doubled.
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            doubled = digit * 2
            total += doubled - 9 if doubled > 9 else doubled
        else:
            total += digit
    return str((10 - total % 10) % 10)


def make_npi(rng: np.random.Generator) -> str:
    """Draw a random ten-digit NPI (first digit 1 or 2) with a valid Luhn check digit."""
    first_nine = str(int(rng.integers(1, 3))) + "".join(str(d) for d in rng.integers(0, 10, size=8))
    return first_nine + npi_check_digit(first_nine)


def make_person_name(rng: np.random.Generator, *, latin1: bool = False) -> tuple[str, str]:
    """Return an obviously fictitious (first, last) name, with accented letters when `latin1`."""
    if latin1:
        return pick(rng, LATIN1_FIRST_NAMES), pick(rng, LATIN1_LAST_NAMES)
    return pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES)


def make_prescriber(rng: np.random.Generator, specialty: str) -> Prescriber:
    """Create a prescriber of the given specialty."""
    first, last = make_person_name(rng)
    return Prescriber(npi=make_npi(rng), first_name=first, last_name=last, specialty=specialty)


def make_pharmacy(
    rng: np.random.Generator, *, latin1: bool = False, mail_order: bool = False
) -> Pharmacy:
    """Create a retail or mail-order pharmacy with a store number, so chains stay distinct."""
    if mail_order:
        base = pick(rng, _MAIL_ORDER_NAMES)
    else:
        base = pick(rng, LATIN1_PHARMACY_NAMES if latin1 else _PHARMACY_NAMES)
    store = int(rng.integers(1, 9999))
    ncpdp = f"{int(rng.integers(0, 10_000_000)):07d}"
    return Pharmacy(ncpdp_id=ncpdp, npi=make_npi(rng), name=f"{base} #{store:04d}")
