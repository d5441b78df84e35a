"""Made-up MIB codes drawn from the feature library's shipped code map.

Real MIB codes and their meanings are confidential and none appear here. Code bases and modifier
letters come from the invented map that `evidence_features.load_code_map()` ships, so generated
codes always mean to the extractor what the generator intended: a base fixes the body-system
category, and the first modifier letter raises the code's severity.
"""

from __future__ import annotations

import zlib
from collections import defaultdict

import numpy as np
from evidence_features import load_code_map

__all__ = [
    "BASES_BY_CATEGORY",
    "MIB_CODE_CATEGORIES",
    "MODIFIER_SEVERITY",
    "UNMAPPED_BASES",
    "base_for",
    "make_code",
]

_CODE_MAP = load_code_map()

# Code base -> category, exactly as the feature library maps it.
MIB_CODE_CATEGORIES: dict[str, str] = {
    base: category for base, (category, _severity) in sorted(_CODE_MAP.bases.items())
}
# Modifier character -> severity 0-3, exactly as the feature library maps it.
MODIFIER_SEVERITY: dict[str, int] = dict(sorted(_CODE_MAP.modifiers.items()))


def _group_bases() -> dict[str, tuple[str, ...]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for base, category in MIB_CODE_CATEGORIES.items():
        grouped[category].append(base)
    return {category: tuple(bases) for category, bases in grouped.items()}


BASES_BY_CATEGORY = _group_bases()

# Bases deliberately absent from the map, to exercise unmapped-code counting.
UNMAPPED_BASES = tuple(b for b in ("777", "868", "880", "999") if b not in MIB_CODE_CATEGORIES)

_LETTERS_BY_SEVERITY = {
    level: tuple(sorted(m for m, s in MODIFIER_SEVERITY.items() if s == level and m.isalpha()))
    for level in (1, 2, 3)
}
# Trailing modifier characters that the map gives no severity, so they never change a code's
# severity; they stand for the unpublished time-frame and source qualifiers.
_NEUTRAL_CHARACTERS = "".join(c for c in "NPRSTUVWXYZ0123456789" if c not in MODIFIER_SEVERITY)


def base_for(rng: np.random.Generator, category: str, condition: str) -> str:
    """Pick a base of `category`: mostly one fixed base per condition, sometimes any other."""
    bases = BASES_BY_CATEGORY[category]
    if rng.random() < 0.8:
        return bases[zlib.crc32(condition.encode()) % len(bases)]
    return bases[int(rng.integers(len(bases)))]


def make_code(rng: np.random.Generator, base: str, severity: int) -> str:
    """Build a code from a base and a severity 1-3, e.g. `503D` or `311CX`.

    About one code in eight has no modifier at all, and about a quarter carry one or two neutral
    characters after the severity letter.
    """
    if rng.random() < 0.12:
        return base
    letters = _LETTERS_BY_SEVERITY[min(max(severity, 1), 3)]
    code = base + letters[int(rng.integers(len(letters)))]
    if rng.random() < 0.25:
        extra = int(rng.integers(1, 3))
        picks = rng.integers(0, len(_NEUTRAL_CHARACTERS), size=extra)
        code += "".join(_NEUTRAL_CHARACTERS[int(i)] for i in picks)
    return code
