"""The configurable map from MIB codes to body-system categories and severities.

MIB does not publish its codebook, so code meanings always come from a map the carrier supplies.
The map shipped in `data/mib_code_map.toml` uses invented codes only.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from evidence_features._memo import MAX_KEY_CHARS
from evidence_features.errors import CodeMapError

__all__ = ["MIB_CATEGORIES", "CodeInfo", "CodeMap", "load_code_map"]

MIB_CATEGORIES = (
    "CARDIOVASCULAR",
    "ENDOCRINE_DIABETES",
    "CANCER",
    "RESPIRATORY",
    "MENTAL_HEALTH",
    "SUBSTANCE_USE",
    "NEURO",
    "RENAL_HEPATIC_GI",
    "AVOCATION_DRIVING",
    "OTHER",
)
"""Categories a code base may map to; all but OTHER have an `MIB_CAT_*` feature."""

_CODE = re.compile(r"(\d{3})([A-Z0-9#]{0,3})")
_MAX_SEVERITY = 3


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """Category and severity the map gives one normalised code."""

    code: str
    base: str
    category: str | None
    severity: int


@dataclass(frozen=True)
class CodeMap:
    """MIB code base to category and severity, plus modifier character to severity.

    Args:
        bases: Three-digit base to `(category, severity)`; category is one of `MIB_CATEGORIES`
            and severity is 0-3.
        modifiers: Modifier character to severity 0-3.
        version: A label recorded with the map, for example the carrier's map release.
    """

    bases: Mapping[str, tuple[str, int]]
    modifiers: Mapping[str, int]
    version: str = "custom"
    _cache: dict[str, CodeInfo] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for base, (category, severity) in self.bases.items():
            if not _CODE.fullmatch(base) or len(base) != 3:
                msg = f"MIB code map base {base!r} is not three digits"
                raise CodeMapError(msg)
            if category not in MIB_CATEGORIES:
                msg = (
                    f"MIB code map base {base!r} has unknown category {category!r}; "
                    f"use one of {', '.join(MIB_CATEGORIES)}"
                )
                raise CodeMapError(msg)
            _check_severity(f"base {base!r}", severity)
        for modifier, severity in self.modifiers.items():
            if len(modifier) != 1:
                msg = f"MIB code map modifier {modifier!r} must be a single character"
                raise CodeMapError(msg)
            _check_severity(f"modifier {modifier!r}", severity)
        object.__setattr__(self, "bases", MappingProxyType(dict(self.bases)))
        object.__setattr__(self, "modifiers", MappingProxyType(dict(self.modifiers)))

    def lookup(self, code: str) -> CodeInfo:
        """Normalise one code and look up its category and severity.

        A code that does not match "three digits plus up to three modifier characters" keeps
        its whole normalised text as its base and is unmapped with severity 0.
        """
        info = self._cache.get(code)
        if info is not None:
            return info
        normalised = "".join(code.split()).upper()
        match = _CODE.fullmatch(normalised)
        if match is None:
            info = CodeInfo(normalised, normalised, None, 0)
        else:
            base, modifier_text = match.groups()
            category, severity = self.bases.get(base, (None, 0))
            for modifier in modifier_text:
                severity = max(severity, self.modifiers.get(modifier, 0))
            info = CodeInfo(normalised, base, category, severity)
        if len(code) <= MAX_KEY_CHARS:
            if len(self._cache) >= 65_536:
                self._cache.clear()
            self._cache[code] = info
        return info


def _check_severity(where: str, severity: object) -> None:
    if not isinstance(severity, int) or isinstance(severity, bool):
        msg = f"MIB code map {where} has severity {severity!r}; use an int from 0 to 3"
        raise CodeMapError(msg)
    if not 0 <= severity <= _MAX_SEVERITY:
        msg = f"MIB code map {where} has severity {severity!r}; use an int from 0 to 3"
        raise CodeMapError(msg)


def _from_toml(text: str, origin: str) -> CodeMap:
    try:
        document = tomllib.loads(text)
        bases = {
            str(base): (entry["category"], entry["severity"])
            for base, entry in document.get("bases", {}).items()
        }
        modifiers = dict(document.get("modifiers", {}))
        version = str(document.get("version", "custom"))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as exc:
        msg = (
            f"MIB code map {origin} is not a valid map file ({type(exc).__name__}); "
            "it needs [bases] entries with category and severity and a [modifiers] table"
        )
        raise CodeMapError(msg) from exc
    return CodeMap(bases=bases, modifiers=modifiers, version=version)


@lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int) -> CodeMap:
    del mtime_ns  # part of the cache key only, so an edited file is read again
    return _from_toml(Path(path).read_text(encoding="utf-8"), repr(path))


def load_code_map(path: str | os.PathLike[str] | None = None) -> CodeMap:
    """Load an MIB code map from a TOML file, or the shipped synthetic map when `path` is None.

    Raises:
        CodeMapError: The file is not a valid map.
        OSError: The file cannot be read.
    """
    if path is None:
        return _default_code_map()
    resolved = Path(path).resolve()
    return _load_cached(str(resolved), resolved.stat().st_mtime_ns)


@lru_cache(maxsize=1)
def _default_code_map() -> CodeMap:
    text = (
        resources.files("evidence_features").joinpath("data/mib_code_map.toml").read_text("utf-8")
    )
    return _from_toml(text, "data/mib_code_map.toml")
