"""Tests for settings, the client built from them, and the package's public names."""

from __future__ import annotations

import evidence_model_client
import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_model_client.cli import app
from evidence_model_client.client import ModelClient
from evidence_model_client.config import ClientSettings, ServerSettings
from typer.testing import CliRunner

from .conftest import FaultyServer


def test_client_settings_read_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """MODEL_CLIENT_* variables set the client settings."""
    monkeypatch.setenv("MODEL_CLIENT_BASE_URL", "http://risk-model-svc.ab12.svc.spcs.internal:5000")
    monkeypatch.setenv("MODEL_CLIENT_DEADLINE_MS", "80")
    monkeypatch.setenv("MODEL_CLIENT_MODEL_VERSION", "V3")
    settings = ClientSettings()
    assert settings.deadline_ms == 80.0
    assert settings.model_version == "V3"
    assert str(settings.base_url).startswith("http://risk-model-svc.ab12")


@pytest.mark.parametrize(
    ("value", "expected"), [("", None), ("dde4b34144d5dda8", "dde4b34144d5dda8")]
)
def test_client_spec_hash_empty_is_unset(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    """An empty MODEL_CLIENT_FEATURE_SPEC_HASH reads as unset; a hash is kept as given."""
    monkeypatch.setenv("MODEL_CLIENT_FEATURE_SPEC_HASH", value)

    assert ClientSettings().feature_spec_hash == expected


@pytest.mark.parametrize(
    "value", ["set-by-deploy-sh", "dde4b34144d5dda", "DDE4B34144D5DDA8", "dde4b34144d5dda8' x"]
)
def test_client_spec_hash_rejects_non_hash(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A value that is not 16 lowercase hex digits fails validation, naming the value."""
    monkeypatch.setenv("MODEL_CLIENT_FEATURE_SPEC_HASH", value)

    with pytest.raises(ValueError, match="is not a feature spec hash") as caught:
        ClientSettings()
    assert repr(value) in str(caught.value)


def test_server_settings_defaults() -> None:
    """The server binds 127.0.0.1:5000 and reads var/model by default."""
    settings = ServerSettings()
    assert (settings.host, settings.port, str(settings.artifact_dir)) == (
        "127.0.0.1",
        5000,
        "var/model",
    )


def test_server_inflight_default_holds_four_bodies() -> None:
    """By default the in-flight body limit admits four bodies of the largest size at once."""
    settings = ServerSettings()
    assert settings.max_inflight_body_bytes == 4 * settings.max_body_bytes


def test_client_settings_reject_zero_deadline() -> None:
    """A deadline of 0 ms is invalid."""
    with pytest.raises(ValueError, match="deadline_ms"):
        ClientSettings(deadline_ms=0)


async def test_client_from_settings_sends_token(
    monkeypatch: pytest.MonkeyPatch, faulty_server: FaultyServer
) -> None:
    """An auth token becomes the Snowflake Authorization header, and the URL loses its slash."""
    monkeypatch.setenv("MODEL_CLIENT_AUTH_TOKEN", "t0k")
    monkeypatch.setenv("MODEL_CLIENT_BASE_URL", faulty_server.base_url + "/")
    faulty_server.health = {"model_version": "V2"}
    settings = ClientSettings()
    client = ModelClient.from_settings(settings)
    info = await client.fetch_model_info()
    await client.predict_proba(np.zeros((1, len(FEATURE_NAMES))))
    await client.aclose()
    assert info.model_version == "V2"
    assert [path for path, _ in faulty_server.requests] == ["/health", "/predict-proba"]
    for headers in faulty_server.request_headers:
        assert headers["authorization"] == 'Snowflake Token="t0k"'


def test_package_all_complete() -> None:
    """__all__ lists every public name the package imports, once (ruff's RUF022 checks order)."""
    exported = evidence_model_client.__all__
    public = {
        name
        for name, value in vars(evidence_model_client).items()
        if not name.startswith("_") and not isinstance(value, type(evidence_model_client))
    }
    assert len(set(exported)) == len(exported)
    assert set(exported) == public


def test_cli_help_names_env_variables() -> None:
    """evidence-model-server --help lists each option with its environment variable."""
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    # Rich wraps help text to the terminal width, so compare without spaces and box borders.
    flat = "".join(result.output.split()).replace("│", "")
    for variable in ("MODEL_SERVER_HOST", "MODEL_SERVER_PORT", "MODEL_SERVER_ARTIFACT_DIR"):
        assert variable in flat
