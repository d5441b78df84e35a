"""Model facts from /health and the settings pass format checks before anything uses them.

The client and scorer tests run against ``FaultyServer``, a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import numpy as np
import pytest
from evidence_features import FEATURE_SPEC_HASH
from evidence_model_client.client import ModelClient
from evidence_model_client.config import ClientSettings
from evidence_model_client.errors import InvalidModelInfoError
from evidence_model_client.model_info import (
    model_name_error,
    model_version_error,
    preview,
    spec_hash_error,
)
from evidence_model_client.scorer import MODEL_INFO_INVALID
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from structlog.testing import capture_logs

from .conftest import ROOMY, FaultyServer, make_scorer

OVERLONG = "V" + "9" * 5000
INVALID_VERSIONS = [
    OVERLONG,
    "V" * 65,
    "",
    "V 2",
    "V2\n",
    'V2"}',
    "V2/..",
    "V2\u00e9",
    "V2\x00",
    None,
    5,
    ["V2"],
]


@pytest.mark.parametrize("version", ["V2", "BUILTIN", "v1.2-rc_3", "V" * 64, "1"])
def test_version_format_accepts(version: str) -> None:
    """Letters, digits, '_', '-' and '.' up to 64 characters are valid."""
    assert model_version_error(version) is None


@pytest.mark.parametrize("version", INVALID_VERSIONS, ids=repr)
def test_version_format_rejects(version: object) -> None:
    """Overlong, empty, spaced, control, quote, slash, non-ASCII and non-string are invalid."""
    error = model_version_error(version)

    assert error is not None
    assert error.startswith("model_version ")
    assert len(error) < 160
    assert "\n" not in error
    assert "\x00" not in error


def test_preview_quotes_escaped_prefix() -> None:
    """A long value is cut to 24 characters and its length given, others are escaped."""
    assert preview(OVERLONG) == f"{'V' + '9' * 23!r}... (5001 characters)"
    assert preview("V2\n\u00e9") == "'V2\\n\\xe9'"
    assert preview({"a": 1}) == "of type dict"


def test_name_and_hash_formats() -> None:
    """The model name allows 128 characters, the spec hash only 16 lowercase hex digits."""
    assert model_name_error("EVIDENCE_RISK_MODEL") is None
    assert model_name_error("M" * 128) is None
    assert model_name_error("M" * 129) is not None
    assert model_name_error("EVIDENCE RISK") is not None
    assert spec_hash_error(FEATURE_SPEC_HASH) is None
    assert spec_hash_error(FEATURE_SPEC_HASH.upper()) is not None
    assert spec_hash_error(FEATURE_SPEC_HASH + "0") is not None
    assert spec_hash_error(12) is not None


def test_settings_reject_invalid_version() -> None:
    """MODEL_CLIENT_MODEL_VERSION passes the /health rule; the message quotes a short prefix."""
    with pytest.raises(ValidationError, match="MODEL_CLIENT_MODEL_VERSION") as raised:
        ClientSettings(model_version=OVERLONG)

    assert "9" * 100 not in str(raised.value)
    assert ClientSettings(model_version="v1.2-rc_3").model_version == "v1.2-rc_3"
    assert ClientSettings(model_version="").model_version is None


@pytest.mark.parametrize(
    ("health", "field"),
    [
        ({"model_version": OVERLONG}, "model_version"),
        ({"model_version": "V2\nX"}, "model_version"),
        ({"model_version": 5}, "model_version"),
        ({"model_version": "V2", "model_name": "N" * 5000}, "model_name"),
        ({"model_version": "V2", "feature_spec_hash": {"nested": "x" * 5000}}, "feature_spec_hash"),
    ],
    ids=["overlong", "newline", "number", "name", "hash_object"],
)
async def test_probe_reports_invalid_info(
    faulty_server: FaultyServer, health: dict[str, object], field: str
) -> None:
    """An invalid fact: reachable, no info, and an error naming the field without the value."""
    faulty_server.health = health

    async with ModelClient(faulty_server.base_url, deadline_seconds=ROOMY) as client:
        probe = await client.probe_health(timeout_seconds=ROOMY)
        with pytest.raises(InvalidModelInfoError, match=field) as raised:
            await client.fetch_model_info(timeout_seconds=ROOMY)

    assert probe.reachable is True
    assert probe.info is None
    assert probe.info_error is not None
    assert field in probe.info_error
    assert len(probe.info_error) < 250
    assert "x" * 100 not in probe.info_error
    assert raised.value.kind == "model_info_invalid"


@pytest.mark.parametrize(
    "health",
    [{}, {"model_version": None}, {"status": "ok"}],
    ids=["empty", "null", "no_version"],
)
async def test_probe_without_version_not_invalid(
    faulty_server: FaultyServer, health: dict[str, object]
) -> None:
    """A /health without a version is a service without one, not a misconfigured one."""
    faulty_server.health = health

    async with ModelClient(faulty_server.base_url, deadline_seconds=ROOMY) as client:
        probe = await client.probe_health(timeout_seconds=ROOMY)

    assert probe.reachable is True
    assert probe.info is None
    assert probe.info_error is None


async def test_scorer_invalid_version_falls_back(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """An invalid /health version: every row falls back, no model call, health names it."""
    faulty_server.health = {"model_version": OVERLONG, "feature_spec_hash": FEATURE_SPEC_HASH}
    registry = CollectorRegistry()
    scorer = make_scorer(faulty_server.base_url, registry)

    with capture_logs() as logs:
        await scorer.start()
        scores = await scorer.score(rows)
        await scorer.probe(max_age_seconds=0.0)
    health = scorer.health()
    await scorer.aclose()

    assert {"RULE_BASED"} == {s.model_version for s in scores}
    assert {MODEL_INFO_INVALID} == {s.fallback_reason for s in scores}
    assert faulty_server.predict_calls == 0
    fallbacks = registry.get_sample_value(
        "evidence_model_fallbacks_total", {"reason": MODEL_INFO_INVALID}
    )
    assert fallbacks == len(rows)
    assert health.model_info_error is not None
    assert "model_version" in health.model_info_error
    assert health.model_version is None
    assert health.model_reachable is False
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(errors) == 1
    assert "9" * 100 not in str(errors[0])


async def test_scorer_version_fixed_and_changed(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Invalid, then V3, then V4: each valid version labels the scores after a probe."""
    faulty_server.health = {"model_version": "V3\n", "feature_spec_hash": FEATURE_SPEC_HASH}
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry())
    await scorer.start()
    invalid = await scorer.score(rows)

    faulty_server.health = {"model_version": "V3", "feature_spec_hash": FEATURE_SPEC_HASH}
    await scorer.probe(max_age_seconds=0.0)
    first = await scorer.score(rows)
    first_health = scorer.health()
    faulty_server.health = {"model_version": "V4", "feature_spec_hash": FEATURE_SPEC_HASH}
    await scorer.probe(max_age_seconds=0.0)
    second = await scorer.score(rows)
    await scorer.aclose()

    assert {MODEL_INFO_INVALID} == {s.fallback_reason for s in invalid}
    assert {"REGISTRY_V3"} == {s.model_version for s in first}
    assert first_health.model_info_error is None
    assert first_health.model_reachable is True
    assert {"REGISTRY_V4"} == {s.model_version for s in second}
    assert faulty_server.predict_calls == 2


async def test_scorer_invalid_info_overrides_configured_version(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """A configured version still falls back while /health reports an invalid spec hash."""
    faulty_server.health = {"model_version": "V2", "feature_spec_hash": "not-a-hash"}
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry(), model_version="V2")
    await scorer.start()
    scores = await scorer.score(rows)
    health = scorer.health()
    await scorer.aclose()

    assert {MODEL_INFO_INVALID} == {s.fallback_reason for s in scores}
    assert health.model_version == "REGISTRY_V2"
    assert health.model_info_error is not None
    assert "feature_spec_hash" in health.model_info_error
    assert faulty_server.predict_calls == 0


async def test_scorer_invalid_version_after_call(
    faulty_server: FaultyServer, rows: np.ndarray
) -> None:
    """Without start(), /health after the first call shows the invalid version: it falls back."""
    faulty_server.health = {"model_version": OVERLONG}
    scorer = make_scorer(faulty_server.base_url, CollectorRegistry())

    first = await scorer.score(rows)
    second = await scorer.score(rows)
    await scorer.aclose()

    assert {MODEL_INFO_INVALID} == {s.fallback_reason for s in first}
    assert {MODEL_INFO_INVALID} == {s.fallback_reason for s in second}
    assert faulty_server.predict_calls == 1
    assert faulty_server.health_calls == 1
