"""The declared 105-column feature specification.

The columns live in ``data/feature_spec.toml``; this module loads them once, checks them and
derives the names, version and hash that training, serving and the table DDL share.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SPEC",
    "FEATURE_SPEC_HASH",
    "FEATURE_SPEC_VERSION",
    "FeatureSpec",
]

Dtype = Literal["int", "bool", "float"]
Group = Literal["mib", "rx", "combined"]
_EXPECTED_COUNT = 105


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One declared column of the feature vector."""

    name: str
    dtype: Dtype
    group: Group
    default: float
    description: str
    source_fields: str


def _load() -> tuple[str, tuple[FeatureSpec, ...]]:
    raw = resources.files("evidence_features").joinpath("data/feature_spec.toml").read_bytes()
    document = tomllib.loads(raw.decode("utf-8"))
    specs = tuple(
        FeatureSpec(
            name=entry["name"],
            dtype=entry["dtype"],
            group=entry["group"],
            default=float(entry["default"]),
            description=entry["description"],
            source_fields=entry["source_fields"],
        )
        for entry in document["feature"]
    )
    names = [spec.name for spec in specs]
    if len(specs) != _EXPECTED_COUNT or len(set(names)) != len(names):
        msg = (
            f"feature_spec.toml declares {len(specs)} columns ({len(set(names))} distinct); "
            f"expected {_EXPECTED_COUNT} distinct names"
        )
        raise RuntimeError(msg)
    return str(document["spec_version"]), specs


def _hash(version: str, specs: tuple[FeatureSpec, ...]) -> str:
    # Only what changes the meaning of a vector goes into the hash: order, names, dtypes and
    # defaults. Rewording a description must not invalidate a trained model.
    canonical = json.dumps(
        {"version": version, "columns": [[s.name, s.dtype, s.default] for s in specs]},
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


FEATURE_SPEC_VERSION, FEATURE_SPEC = _load()
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURE_SPEC)
FEATURE_SPEC_HASH: str = _hash(FEATURE_SPEC_VERSION, FEATURE_SPEC)
