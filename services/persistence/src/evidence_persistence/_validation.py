"""Type and range checks of ``PredictionRecord`` fields.

``PredictionRecord.__post_init__`` runs them on every record, whether a caller built it or
``decode_record`` rebuilt it from a queue row. A wrong type raises ``TypeError`` and a value out
of range raises ``ValueError``. Each message names the field, the type found and the fix, but
never the value: records carry health data (policy numbers, XML), and these messages reach the
dead-letter table and the gateway's error handling.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import SupportsFloat, cast

from evidence_features import FEATURE_NAMES

__all__ = [
    "check_created_at",
    "check_document",
    "check_features",
    "check_inference_ms",
    "check_optional_text",
    "check_risk_score",
    "check_source",
    "check_text",
    "check_warnings",
]

FEATURE_COUNT = len(FEATURE_NAMES)
_SOURCES = frozenset(("API", "SQL"))


def _type_error(name: str, expected: str, value: object) -> TypeError:
    return TypeError(f"{name} must be {expected}, got {type(value).__name__}")


def check_text(name: str, value: object, max_length: int | None = None) -> str:
    """Return ``value`` if it is a non-empty ``str`` of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise _type_error(name, "a str", value)
    if not value:
        msg = f"{name} is an empty string; pass a non-empty string"
        raise ValueError(msg)
    if max_length is not None and len(value) > max_length:
        msg = f"{name} has {len(value)} characters; the maximum is {max_length}"
        raise ValueError(msg)
    return value


def check_optional_text(name: str, value: object) -> str | None:
    """Return ``value`` if it is ``None`` or a non-empty ``str``."""
    if value is None:
        return None
    return check_text(name, value)


def _real(name: str, value: object) -> float:
    if isinstance(value, float):
        return float(value)
    # bool is an int subclass, but True as a score or a duration is a caller's mistake.
    # numbers.Real also admits int and numpy scalars such as float32.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _type_error(name, "a float", value)
    try:
        return float(value)
    except OverflowError:
        # An int beyond the float range, such as 10**400 parsed from a JSON payload.
        msg = f"{name} is too large for a float64"
        raise ValueError(msg) from None


def check_risk_score(value: object) -> float:
    """Return the score as a ``float`` if it is a probability in [0, 1]."""
    score = _real("risk_score", value)
    if not 0.0 <= score <= 1.0:
        problem = "NaN" if math.isnan(score) else "outside [0, 1]"
        msg = f"risk_score is {problem}; pass the model's probability in [0, 1]"
        raise ValueError(msg)
    return score


def check_inference_ms(value: object) -> float:
    """Return the duration as a ``float`` if it is finite and not negative."""
    duration = _real("inference_ms", value)
    if not (duration >= 0.0 and math.isfinite(duration)):
        msg = "inference_ms is negative, NaN or infinite; pass the elapsed milliseconds"
        raise ValueError(msg)
    return duration


def check_source(value: object) -> str:
    """Return ``value`` if it is ``"API"`` or ``"SQL"``."""
    if not isinstance(value, str):
        raise _type_error("source", "a str", value)
    if value not in _SOURCES:
        msg = "source is invalid; use 'API' or 'SQL'"
        raise ValueError(msg)
    return value


def check_created_at(value: object) -> datetime:
    """Return ``value`` converted to UTC if it is a timezone-aware ``datetime``."""
    if not isinstance(value, datetime):
        raise _type_error("created_at", "a datetime", value)
    if value.utcoffset() is None:
        msg = "created_at is a naive datetime; pass a timezone-aware UTC datetime"
        raise ValueError(msg)
    return value.astimezone(UTC)


def check_features(value: object) -> tuple[float, ...]:
    """Return the features as a tuple of ``FEATURE_COUNT`` finite floats."""
    # str and bytes are iterable, and a dict would give its keys. Concrete types keep this
    # check cheap, because it runs for every append and every decoded queue row.
    if isinstance(value, str | bytes | dict):
        raise _type_error("features", "a sequence of floats", value)
    try:
        features = tuple(map(float, cast("Iterable[SupportsFloat]", value)))
    except (TypeError, ValueError, OverflowError) as exc:
        msg = f"features must be a sequence of 105 floats; {type(exc).__name__} on conversion"
        raise TypeError(msg) from None
    if len(features) != FEATURE_COUNT:
        msg = (
            f"features has {len(features)} values; expected {FEATURE_COUNT} in FEATURE_NAMES order"
        )
        raise ValueError(msg)
    if not all(map(math.isfinite, features)):
        index = next(i for i, number in enumerate(features) if not math.isfinite(number))
        msg = (
            f"features[{index}] ({FEATURE_NAMES[index]}) is NaN or infinite; every feature "
            "must be a finite number because the tables store it as FLOAT and JSON"
        )
        raise ValueError(msg)
    return features


def check_warnings(value: object) -> tuple[str, ...]:
    """Return the warning kinds as a tuple if ``value`` is a sequence of strings."""
    # A str is iterable too, and "abc" would silently become ("a", "b", "c").
    if isinstance(value, str | bytes | dict):
        raise _type_error("warnings", "a tuple of str such as ('unknown_drug',)", value)
    try:
        warnings: tuple[object, ...] = tuple(cast("Iterable[object]", value))
    except TypeError:
        raise _type_error("warnings", "a tuple of str such as ('unknown_drug',)", value) from None
    for index, kind in enumerate(warnings):
        if not isinstance(kind, str):
            raise _type_error(f"warnings[{index}]", "a str", kind)
    return cast("tuple[str, ...]", warnings)


def check_document(name: str, value: object) -> bytes | None:
    """Return the raw XML as ``bytes`` (a ``str`` is UTF-8 encoded), or ``None``."""
    if value is None or isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise _type_error(name, "bytes, str or None", value)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # The codec's message quotes the character, which is part of the document.
        msg = f"{name} contains a lone surrogate at index {exc.start}; pass valid Unicode"
        raise ValueError(msg) from None
