"""Risk levels, prediction ids, settings and the log filter."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import structlog
from evidence_gateway.config import Settings
from evidence_gateway.ids import new_prediction_id, service_function_prediction_id
from evidence_gateway.logs import configure_logging, filter_allowed_keys
from evidence_gateway.risk import classify_risk
from pydantic import SecretStr


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0.0, "LOW"),
        (0.2999, "LOW"),
        (0.3, "MEDIUM"),
        (0.6999, "MEDIUM"),
        (0.7, "HIGH"),
        (1.0, "HIGH"),
    ],
)
def test_classify_risk_bands(score: float, level: str) -> None:
    """Each band's lower bound is inclusive."""
    assert level == classify_risk(score)


@pytest.mark.parametrize("score", [-0.01, 1.01, float("nan")])
def test_classify_risk_out_of_range(score: float) -> None:
    """Scores outside [0, 1] are a bug upstream and raise."""
    with pytest.raises(ValueError, match="risk_score must lie in"):
        classify_risk(score)


def test_service_function_id_deterministic() -> None:
    """The same batch id, row and content give the same id; any other one another id."""
    content = ["P-1", "<r/>", None]
    first = service_function_prediction_id("q:1:1:0:0", 5, content)

    assert first == service_function_prediction_id("q:1:1:0:0", 5, list(content))
    assert first != service_function_prediction_id("q:1:1:0:0", 6, content)
    assert first != service_function_prediction_id("q:1:1:0:1", 5, content)
    assert first != service_function_prediction_id("q:1:1:0:0", 5, ["P-2", "<r/>", None])
    assert uuid.UUID(first).version == 5


def test_new_prediction_id_random() -> None:
    """API prediction ids are distinct UUID4s."""
    ids = {new_prediction_id() for _ in range(100)}

    assert len(ids) == 100


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """GATEWAY_* variables set the fields."""
    monkeypatch.setenv("GATEWAY_MAX_BATCH_ROWS", "17")
    monkeypatch.setenv("GATEWAY_API_TOKEN", "zq-9731")

    settings = Settings()

    assert settings.max_batch_rows == 17
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "zq-9731"
    assert "zq-9731" not in repr(settings)


def test_settings_token_required_outside_local_mode() -> None:
    """Without a token and local mode, the error names both variables."""
    with pytest.raises(ValueError, match="GATEWAY_API_TOKEN") as raised:
        Settings()

    assert "GATEWAY_LOCAL_MODE=true" in str(raised.value)


def test_settings_empty_token_counts_as_unset() -> None:
    """An empty or blank token never matches a bare 'Bearer' header: it counts as unset."""
    with pytest.raises(ValueError, match="GATEWAY_API_TOKEN"):
        Settings(api_token=SecretStr(" "))

    assert Settings(api_token=SecretStr(""), local_mode=True).api_token is None


@pytest.mark.parametrize(
    "token", ["t\u00f6k\u00e9n-0123456789", "two words", "line\nbreak", " padded ", "a=b", "tab\t"]
)
def test_settings_unsendable_token_rejected(token: str) -> None:
    """A token that no Authorization header can carry is rejected at start, never echoed."""
    with pytest.raises(ValueError, match="GATEWAY_API_TOKEN contains characters") as raised:
        Settings(api_token=SecretStr(token), local_mode=True)

    assert token.strip() not in str(raised.value)


@pytest.mark.parametrize("token", ["s3", "abc-DEF_012.~+/", "dG9rZW4=", "x" * 64 + "=="])
def test_settings_b64token_accepted(token: str) -> None:
    settings = Settings(api_token=SecretStr(token))

    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == token


def test_settings_body_over_inflight_rejected() -> None:
    """A body limit above the in-flight limit could never be met, so it is rejected."""
    with pytest.raises(ValueError, match="GATEWAY_MAX_BODY_BYTES=2000 exceeds"):
        Settings(max_document_bytes=10, max_body_bytes=2000, max_inflight_body_bytes=1999)
    accepted = Settings(
        max_document_bytes=10, max_body_bytes=2000, max_inflight_body_bytes=2000, local_mode=True
    )
    assert accepted.max_inflight_body_bytes == 2000


def test_settings_document_over_body_rejected() -> None:
    """A document limit above the body limit is a configuration error naming both variables."""
    with pytest.raises(ValueError, match="GATEWAY_MAX_DOCUMENT_BYTES=10 exceeds"):
        Settings(max_document_bytes=10, max_body_bytes=5)


def test_log_filter_drops_unknown_keys() -> None:
    """Keys outside the allow-list are dropped and named; their values never appear."""
    event = {"event": "parsed", "request_id": "r1", "mib": {"Subject": {"dob": "1970-01-01"}}}

    kept = filter_allowed_keys(None, "info", event)

    assert kept == {"event": "parsed", "request_id": "r1", "dropped_keys": ["mib"]}


def test_log_filter_clips_values() -> None:
    """Long strings are cut and nested values replaced by their type name."""
    kept = filter_allowed_keys(None, "info", {"event": "x" * 500, "error": {"deep": [1]}})

    assert len(kept["event"]) == 201
    assert kept["error"] == "<dict dropped>"


def test_log_line_deep_value_does_not_raise(capsys: pytest.CaptureFixture[str]) -> None:
    """A value nested 5000 levels deep neither raises nor reaches the output."""
    configure_logging("json", "info")
    deep: dict[str, object] = {}
    node = deep
    for _ in range(5000):
        child: dict[str, object] = {}
        node["a"] = child
        node = child

    structlog.get_logger("test").info("deep value", error=deep, request_id="r-deep")

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["request_id"] == "r-deep"
    assert line["error"] == "<dict dropped>"


def test_stdlib_exception_logged_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn's traceback becomes one JSON line with the exception type and no message text."""
    configure_logging("json", "info")
    canary = "CANARY-JANE-EXAMPLE"

    try:
        raise ValueError(canary)
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    output = capsys.readouterr()
    line = json.loads(output.out.strip().splitlines()[-1])
    assert line["event"] == "Exception in ASGI application"
    assert line["exception_type"] == "ValueError"
    assert line["level"] == "error"
    assert canary not in output.out
    assert canary not in output.err


def test_latency_buckets_cover_largest_model_deadline() -> None:
    """A request or model call cut off at the largest allowed deadline lands in a finite bucket."""
    from evidence_gateway import metrics
    from evidence_model_client.config import MAX_DEADLINE_MS

    assert max(metrics._LATENCY_BUCKETS) > MAX_DEADLINE_MS / 1000
