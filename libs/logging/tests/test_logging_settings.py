"""The description of invalid settings and the exit of a command whose settings are invalid.

The settings classes here mirror the services' kinds of fields: a prefixed field, a field with
alternative variable names, a secret field, a required field and a rule across two fields.
"""

from __future__ import annotations

import pytest
from evidence_logging import (
    HIDDEN_VALUE,
    INVALID_SETTINGS_EXIT_STATUS,
    describe_invalid_settings,
    exit_on_invalid_settings,
)
from pydantic import (
    AliasChoices,
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

TOKEN = "tok-3f9a-SECRET-77c1e0d2"  # noqa: S105 (a made-up token the output must not show)


class ExampleSettings(BaseSettings):
    """Settings read from ``EXAMPLE_*`` and, for ``account``, also ``VENDOR_ACCOUNT``."""

    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore")

    timeout_seconds: float = Field(default=1.0, gt=0)
    port: int = Field(default=8000, ge=0, le=65535)
    account: int | None = Field(
        default=None, validation_alias=AliasChoices("EXAMPLE_ACCOUNT", "VENDOR_ACCOUNT")
    )
    token: SecretStr | None = Field(default=None, min_length=20)
    max_item_bytes: int = 10
    max_body_bytes: int = 100

    @model_validator(mode="after")
    def _check_item_fits_body(self) -> ExampleSettings:
        if self.max_item_bytes > self.max_body_bytes:
            msg = "EXAMPLE_MAX_ITEM_BYTES exceeds EXAMPLE_MAX_BODY_BYTES; lower the item limit"
            raise ValueError(msg)
        return self


class UrlSettings(BaseSettings):
    """A URL setting that is not a secret field."""

    model_config = SettingsConfigDict(env_prefix="EXAMPLE_", extra="ignore")

    base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:5000")


class RequiredSettings(BaseSettings):
    """Settings with a field that has no default."""

    model_config = SettingsConfigDict(env_prefix="REQUIRED_", extra="ignore")

    region: str


def _describe(
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    settings_class: type[BaseSettings] = ExampleSettings,
) -> str:
    """Build ``settings_class`` from ``environ`` alone and describe the error it raises."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        settings_class()
    return describe_invalid_settings([(caught.value, settings_class)], environ)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the variables these classes read, in case the shell running pytest set one."""
    for name in [
        "EXAMPLE_TIMEOUT_SECONDS",
        "EXAMPLE_PORT",
        "EXAMPLE_ACCOUNT",
        "VENDOR_ACCOUNT",
        "EXAMPLE_TOKEN",
        "EXAMPLE_MAX_ITEM_BYTES",
        "EXAMPLE_MAX_BODY_BYTES",
        "REQUIRED_REGION",
    ]:
        monkeypatch.delenv(name, raising=False)


def test_one_invalid_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """One invalid value gives the header, the variable with value and reason, and the fix."""
    text = _describe(monkeypatch, {"EXAMPLE_TIMEOUT_SECONDS": "0"})

    assert [
        "error: invalid setting in the environment:",
        "  EXAMPLE_TIMEOUT_SECONDS='0': Input should be greater than 0",
        "To fix: set EXAMPLE_TIMEOUT_SECONDS to a valid value or unset it to use the default.",
    ] == text.splitlines()


def test_several_invalid_variables_all_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each invalid variable gets its own line, and the count is in the header."""
    text = _describe(monkeypatch, {"EXAMPLE_TIMEOUT_SECONDS": "-1", "EXAMPLE_PORT": "http"})
    lines = text.splitlines()

    assert "error: 2 invalid settings in the environment:" == lines[0]
    assert "  EXAMPLE_TIMEOUT_SECONDS='-1': Input should be greater than 0" in lines
    assert any(
        line.startswith("  EXAMPLE_PORT='http': Input should be a valid integer") for line in lines
    )
    assert lines[-1].startswith("To fix: set each variable shown with a value to a valid one")


def test_lower_case_variable_named_upper(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-settings ignores case, and the message names the variable in upper case."""
    text = _describe(monkeypatch, {"example_port": "70000"})

    assert "  EXAMPLE_PORT='70000': Input should be less than or equal to 65535" in text


def test_alias_choice_names_variable_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Of a field's alternative names, the message gives the one that was set."""
    text = _describe(monkeypatch, {"VENDOR_ACCOUNT": "acme"})

    assert "  VENDOR_ACCOUNT='acme': Input should be a valid integer" in text
    assert "EXAMPLE_ACCOUNT" not in text


def test_secret_value_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """The value of a SecretStr field is replaced by the placeholder, and the reason stays."""
    text = _describe(monkeypatch, {"EXAMPLE_TOKEN": "short-secret"})

    assert f"  EXAMPLE_TOKEN={HIDDEN_VALUE}: " in text
    assert "at least 20" in text
    assert "short-secret" not in text


def test_model_rule_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule across fields prints its own message, and no input, so no secret either."""
    environ = {"EXAMPLE_MAX_ITEM_BYTES": "500", "EXAMPLE_TOKEN": TOKEN}
    text = _describe(monkeypatch, environ)

    assert [
        "error: invalid setting in the environment:",
        "  EXAMPLE_MAX_ITEM_BYTES exceeds EXAMPLE_MAX_BODY_BYTES; lower the item limit",
    ] == text.splitlines()
    assert TOKEN not in text


def test_secret_quoted_by_validator_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message that quotes a secret value is replaced whole by the placeholder."""
    monkeypatch.setenv("EXAMPLE_TOKEN", TOKEN)
    monkeypatch.setenv("EXAMPLE_PORT", "x")
    with pytest.raises(ValidationError) as caught:
        ExampleSettings()
    detail = caught.value.errors()[0]
    quoting = ValidationError.from_exception_data(
        "ExampleSettings",
        [
            {
                "type": "value_error",
                "loc": ("port",),
                "input": detail["input"],
                "ctx": {"error": ValueError(f"port clashes with token {TOKEN}")},
            }
        ],
    )

    text = describe_invalid_settings(
        [(quoting, ExampleSettings)], {"EXAMPLE_TOKEN": TOKEN, "EXAMPLE_PORT": "x"}
    )

    assert f"EXAMPLE_PORT='x': {HIDDEN_VALUE}" in text
    assert "clashes" not in text
    assert TOKEN not in text


@pytest.mark.parametrize("token", ["0", "ab"])
def test_short_secret_not_revealed(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    """A value containing a short secret is hidden whole, so no part of it shows the secret."""
    monkeypatch.setenv("EXAMPLE_TOKEN", token)
    value = f"70{token}00{token}"
    monkeypatch.setenv("EXAMPLE_PORT", value)
    with pytest.raises(ValidationError) as caught:
        ExampleSettings()

    text = describe_invalid_settings(
        [(caught.value, ExampleSettings)], {"EXAMPLE_TOKEN": token, "EXAMPLE_PORT": value}
    )

    assert f"EXAMPLE_PORT={HIDDEN_VALUE}" in text
    assert value not in text
    assert "70" not in text


def test_url_password_hidden() -> None:
    """A password in a URL setting, which is not a secret field, is hidden in the message."""
    url = "svc://user:Pa55w0rd@127.0.0.1:99999/"
    with pytest.raises(ValidationError) as caught:
        # pydantic validates a str for a URL field, and this one must fail that validation.
        UrlSettings(base_url=url)  # type: ignore[arg-type]

    text = describe_invalid_settings([(caught.value, UrlSettings)], {"EXAMPLE_BASE_URL": url})

    assert "Pa55w0rd" not in text
    assert "user:" not in text
    assert "svc://(hidden)@127.0.0.1:99999/" in text


def test_missing_variable_named_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """A required field that is not set is named without a value, and the fix is to set it."""
    text = _describe(monkeypatch, {}, RequiredSettings)

    assert [
        "error: invalid setting in the environment:",
        "  REQUIRED_REGION is not set: Field required",
        "To fix: set REQUIRED_REGION.",
    ] == text.splitlines()


def test_long_value_clipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value longer than 200 characters is cut and ends in an ellipsis."""
    text = _describe(monkeypatch, {"EXAMPLE_PORT": "9" * 300})

    assert f"EXAMPLE_PORT='{'9' * 200}…'" in text
    assert "9" * 201 not in text


def test_failures_of_two_classes_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The errors of several settings classes go into one message."""
    monkeypatch.setenv("EXAMPLE_PORT", "-1")
    with pytest.raises(ValidationError) as example_error:
        ExampleSettings()
    with pytest.raises(ValidationError) as required_error:
        # BaseSettings reads region from the environment, where this test leaves it unset.
        RequiredSettings()  # type: ignore[call-arg]

    text = describe_invalid_settings(
        [(example_error.value, ExampleSettings), (required_error.value, RequiredSettings)],
        {"EXAMPLE_PORT": "-1"},
    )

    assert text.startswith("error: 2 invalid settings in the environment:")
    assert "  EXAMPLE_PORT='-1': Input should be greater than or equal to 0" in text
    assert "  REQUIRED_REGION is not set: Field required" in text
    assert text.endswith(
        "To fix: set EXAMPLE_PORT to a valid value or unset it to use the default, "
        "and set REQUIRED_REGION."
    )


def test_exit_prints_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """exit_on_invalid_settings writes the description to stderr and exits with status 2."""
    monkeypatch.setenv("EXAMPLE_PORT", "-1")
    with pytest.raises(ValidationError) as caught:
        ExampleSettings()

    with pytest.raises(SystemExit) as exited:
        exit_on_invalid_settings([(caught.value, ExampleSettings)])

    captured = capsys.readouterr()
    assert INVALID_SETTINGS_EXIT_STATUS == exited.value.code
    assert 2 == INVALID_SETTINGS_EXIT_STATUS
    assert "EXAMPLE_PORT='-1'" in captured.err
    assert "" == captured.out


def test_keyword_value_shown_as_repr() -> None:
    """A value passed as a keyword argument, not read from a variable, shows unquoted."""
    with pytest.raises(ValidationError) as caught:
        ExampleSettings(port=70000)

    text = describe_invalid_settings([(caught.value, ExampleSettings)], {})

    assert "  EXAMPLE_PORT=70000: Input should be less than or equal to 65535" in text
