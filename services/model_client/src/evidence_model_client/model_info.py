"""Format rules for the model facts that the model service reports on ``GET /health``.

The gateway writes the model version into Prometheus labels (``REGISTRY_<VERSION>``), log
lines, every prediction and the readiness report. A service that reports a long or odd value
would put it in all of those, with a new metric series for each distinct value. So the client
checks each fact here, where it enters, and treats a service that reports an invalid one as
misconfigured. ``MODEL_CLIENT_MODEL_VERSION`` and ``MODEL_CLIENT_FEATURE_SPEC_HASH`` pass the
same checks at start-up.

Version names: training and ``evidence-train register`` write 1 to 64 letters, digits and
underscores, which is also an unquoted Snowflake identifier. The client accepts ``-`` and ``.``
as well, for versions registered by other tools as quoted identifiers such as ``"v1.2"``.
Snowflake allows identifiers of up to 255 characters, so a longer registered name is rejected
here and must be shortened.
"""

from __future__ import annotations

import re

__all__ = [
    "MODEL_NAME_MAX_LENGTH",
    "MODEL_VERSION_MAX_LENGTH",
    "model_name_error",
    "model_version_error",
    "preview",
    "spec_hash_error",
]

MODEL_VERSION_MAX_LENGTH = 64
MODEL_NAME_MAX_LENGTH = 128
_VERSION_FORMAT = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MODEL_VERSION_MAX_LENGTH}}}")
_NAME_FORMAT = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MODEL_NAME_MAX_LENGTH}}}")
# The format of evidence_features.FEATURE_SPEC_HASH: the first 16 hex digits of a SHA-256.
_SPEC_HASH_FORMAT = re.compile(r"[0-9a-f]{16}")
# Characters of an invalid value that a message quotes. The rest is only counted, so a
# message stays short whatever the service sent.
_PREVIEW_CHARACTERS = 24


def preview(value: object) -> str:
    """Return a short ASCII-escaped quote of ``value`` for an error message.

    A string is cut to its first 24 characters and its length is given, and any other value
    is named by its JSON type only.
    """
    if not isinstance(value, str):
        return f"of type {type(value).__name__}"
    quoted = ascii(value[:_PREVIEW_CHARACTERS])
    if len(value) > _PREVIEW_CHARACTERS:
        return f"{quoted}... ({len(value)} characters)"
    return quoted


def model_version_error(value: object) -> str | None:
    """Return why ``value`` is not a valid model version, or None when it is valid."""
    return _name_error("model_version", value, _VERSION_FORMAT, MODEL_VERSION_MAX_LENGTH)


def model_name_error(value: object) -> str | None:
    """Return why ``value`` is not a valid model name, or None when it is valid."""
    return _name_error("model_name", value, _NAME_FORMAT, MODEL_NAME_MAX_LENGTH)


def _name_error(field: str, value: object, pattern: re.Pattern[str], max_length: int) -> str | None:
    if isinstance(value, str) and pattern.fullmatch(value):
        return None
    return (
        f"{field} {preview(value)} is invalid: expected 1 to {max_length} letters, digits, "
        "'_', '-' or '.'"
    )


def spec_hash_error(value: object) -> str | None:
    """Return why ``value`` is not a feature spec hash, or None when it is one."""
    if isinstance(value, str) and _SPEC_HASH_FORMAT.fullmatch(value):
        return None
    return f"feature_spec_hash {preview(value)} is invalid: expected 16 lowercase hex digits"
