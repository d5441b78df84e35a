"""Strength texts of dispensed products: the amounts per unit or per volume they name.

`parse_strength` reads texts such as "5-325 MG", "25 MCG/HR" and "7.5-325 MG/15 ML" into the
numbers in label order, the unit of each, and the volume a liquid's amounts refer to. The MME
computation (`evidence_features._drugs.opioid_dose`) picks the opioid's number from it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from evidence_features._numbers import STRENGTH, NumberRange, parse_number
from evidence_features._text import normalise_text

__all__ = ["MAX_STRENGTH_CHARS", "VOLUME_ML", "Strength", "parse_strength"]

# A number may hold commas between digits ("1,000", but also "1,00" or "30,5"), so that
# parse_number can apply the thousands-grouping rule to it. A comma followed by a space or a unit
# ends the number ("10 MG, 325 MG").
# A number may lack its leading zero (".5 MG" is 0.5 mg), unless the "." follows a letter,
# where it ends an abbreviation ("TAB.10MG" is 10 mg).
_STRENGTH = re.compile(r"((?<![A-Za-z])\.\d+|\d+(?:,\d+)*(?:\.\d+)?)\s*(MCG/HR|MCG/H|MG|MCG|ML|%)?")
# A liquid's strength is given per volume: "5 MG/5 ML", "7.5-325 MG/15 ML", "20 MG/ML",
# "5MG PER 5ML", "5 MG/5 CC", "5 MG/TSP". Group 1 is the volume number, empty for "per mL",
# and group 2 the volume unit. The pattern runs on text with collapsed whitespace, and group 1
# contains no space or "/". So each start scans one word and the search stays linear, where two
# adjacent \s* runs are quadratic on a run of spaces.
_PER_VOLUME = re.compile(
    r"(?:/ ?|\bPER )([^ /]*?) ?(ML|MLS|MILLILIT(?:ER|RE)S?|CC|TSP|TEASPOON(?:FUL)?S?)\b"
)
# Prescription labels count a teaspoon as 5 mL, the dose that "per teaspoonful" means.
_TEASPOON_ML = 5.0
_VOLUME_NUMBER = re.compile(r"[0-9.,]+")
# Labelled volumes run from prefilled syringes of a few tenths of a mL (an estimate) to
# 1,000 mL infusion bags. A volume outside these bounds is a typing error, and the per-mL range
# check alone would pass it: "5 MG/0.01 ML" reads as 500 mg/mL.
VOLUME_ML = NumberRange(0.1, 1_000.0)
# "/" or " PER " right after a strength unit, then an optional number and the denominator's
# word: "MG/ML", "MCG/HR", "MG/5 ML", "MG/325 MG", "MG/ACT". A "/" after a space or a name
# ("325 MG / OXYCODONE 5 MG", "OXYCODONE/APAP 5/325") separates ingredients instead.
_DENOMINATOR = re.compile(r"(?<![A-Z])(?:MCG|MG|GM|G|%)(?:/ ?| PER )(?:([0-9.,]+) ?)?([A-Z]+)")
_VOLUME_WORDS = frozenset(
    {"ML", "MLS", "MILLILITER", "MILLILITERS", "MILLILITRE", "MILLILITRES", "CC", "TSP",
     "TEASPOON", "TEASPOONS", "TEASPOONFUL", "TEASPOONFULS"}
)  # fmt: skip
_RATE_WORDS = frozenset({"HR", "HRS", "H", "HOUR", "HOURS"})
# An amount per tablet, capsule or patch is the per-unit strength that the quantity counts.
_UNIT_WORDS = frozenset(
    {"TAB", "TABS", "TABLET", "TABLETS", "CAP", "CAPS", "CAPSULE", "CAPSULES", "EA", "EACH",
     "PATCH", "SUPPOSITORY", "SUPP", "FILM"}
)  # fmt: skip
# After a number, a mass unit starts the next ingredient's strength ("10 MG/325 MG").
_MASS_WORDS = frozenset({"MG", "MCG", "G", "GM"})
# Denominators that give an amount per dose, per mass or per container, which the quantity
# does not count: "100 MCG/ACT", "5 MG/G", "2 MG/VIAL".
_DOSE_WORDS = frozenset(
    {"ACT", "ACTUATION", "ACTUATIONS", "SPRAY", "SPRAYS", "PUFF", "PUFFS", "DOSE", "DOSES",
     "INH", "INHALATION", "G", "GM", "GRAM", "GRAMS", "KG", "L", "LITER", "LITRE", "DL", "DAY",
     "VIAL", "AMP", "AMPULE", "SYRINGE", "DROP", "DROPS", "GTT"}
)  # fmt: skip
# Any other denominator word of up to three letters ("X", "CL") is an unknown unit. A longer
# one is the next ingredient's name ("10MG/ACETAMINOPHEN 325MG").
# NOTE: so an unlisted unit spelled in four or more letters still reads as a per-unit strength.
_MAX_UNIT_LETTERS = 3
# A label lists one number per ingredient, and combination products have at most a handful.
# The cap bounds the work on a junk strength field: 30,000 numbers took 24 ms to read.
_MAX_STRENGTH_NUMBERS = 32
# A strength, or a label name read in its place, is a few words long: RxNorm's names of
# multi-ingredient opioid syrups run to about 150 characters (an estimate from such names).
# A longer text is unreadable, which keeps the work per fill bounded: upper-casing and
# searching a 1 MB text took about 100 ms.
MAX_STRENGTH_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class Strength:
    """Numbers of a strength text in label order, with the unit each one carries.

    A value is None where the text contains a number that is ambiguous ("1,00", "30,5") or outside
    the `STRENGTH` range, so the other values keep their label positions.

    `per_volume` is True for a liquid whose amounts are given per volume ("5 MG/5 ML"), and
    `volume_ml` is that volume in mL (1.0 for "MG/ML", 5.0 for "MG/TSP"). `volume_ml` is None
    for a strength per unit (tablet, capsule, patch) and for a per-volume strength whose volume
    cannot be read or is outside 0.1 to 1,000 mL ("5 MG/X ML", "5 MG/0.01 ML").

    `unreadable` is True when the text gives no dose per unit or per mL. That is the case for a
    text longer than `MAX_STRENGTH_CHARS`, and for an amount per dose, per mass, per container or
    per an unknown unit of up to three letters ("5 MG/ACT", "5 MG/G", "2 MG/VIAL", "5 MG/X ML").
    """

    values: tuple[float | None, ...]
    units: tuple[str, ...]
    per_volume: bool = False
    volume_ml: float | None = None
    unreadable: bool = False


def parse_strength(text: str) -> Strength | None:
    """Parse a strength such as "5-325 MG", "10 MG/325 MG", "25 MCG/HR" or "5 MG/5 ML".

    A number without its own unit takes the next unit in the text ("5-325 MG" is 5 mg and
    325 mg). Each number is read by `parse_number` with the `STRENGTH` range, so a comma counts
    only as a thousands separator and an ambiguous or out-of-range number is None. Only the
    first 32 numbers are read. The first "/ N ML" (or "PER N ML", with the volume in mL, cc or
    teaspoons) makes the strength per volume: its volume is not one of the values, so
    "7.5-325 MG/15 ML" is 7.5 mg and 325 mg per 15 mL. Full-width letters and digits read as
    their plain forms. Returns None when the text contains no number, and an unreadable
    `Strength` without values for a text longer than `MAX_STRENGTH_CHARS`.
    """
    if len(text) > MAX_STRENGTH_CHARS:
        return Strength((), (), unreadable=True)
    upper = " ".join(normalise_text(text).upper().split())
    per_volume = _PER_VOLUME.search(upper)
    volume_ml: float | None = None
    volume_span = (-1, -1)
    if per_volume is not None:
        volume_span = per_volume.span()
        volume_ml = _volume_ml(per_volume.group(1), per_volume.group(2))
    values: list[float | None] = []
    units: list[str | None] = []
    for match in itertools.islice(_STRENGTH.finditer(upper), _MAX_STRENGTH_NUMBERS):
        if volume_span[0] <= match.start() < volume_span[1]:
            continue
        values.append(parse_number(match.group(1), STRENGTH))
        units.append(match.group(2))
    if not values:
        return None
    resolved: list[str] = []
    pending = ""
    for unit in reversed(units):
        if unit is not None:
            pending = unit
        resolved.append(pending)
    resolved.reverse()
    return Strength(
        tuple(values),
        tuple(resolved),
        per_volume is not None,
        volume_ml,
        unreadable=_has_unknown_denominator(upper),
    )


def _volume_ml(number: str, unit: str) -> float | None:
    # "MG/ML" names no number: the amounts are per 1 mL. Any text other than one readable
    # number ("X", "5X", "1,5", "0") leaves the volume unknown rather than guessed.
    scale = _TEASPOON_ML if unit.startswith(("TSP", "TEASPOON")) else 1.0
    if not number:
        return scale
    if _VOLUME_NUMBER.fullmatch(number) is None:
        return None
    volume = parse_number(number, NumberRange(0.0, VOLUME_ML.maximum))
    if volume is None:
        return None
    volume *= scale
    return volume if VOLUME_ML.minimum <= volume <= VOLUME_ML.maximum else None


def _has_unknown_denominator(upper: str) -> bool:
    # An amount per actuation, per gram or per an unknown unit gives no dose per unit or per
    # mL, so the quantity cannot turn it into a daily dose. Reading it per unit would guess.
    for match in itertools.islice(_DENOMINATOR.finditer(upper), _MAX_STRENGTH_NUMBERS):
        number, word = match.groups()
        if word in _VOLUME_WORDS or word in _RATE_WORDS or word in _UNIT_WORDS:
            continue
        if number and word in _MASS_WORDS:
            continue
        if word in _DOSE_WORDS or len(word) <= _MAX_UNIT_LETTERS:
            return True
    return False
