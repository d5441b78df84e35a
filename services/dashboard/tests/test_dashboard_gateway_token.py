"""The test form against a real gateway that requires a bearer token (GATEWAY_API_TOKEN).

The gateway runs on 127.0.0.1 outside local mode, without a model server, so it scores with its
rule-based fallback. The page runs in a child process (``token_page_run.py``), whose whole
stdout and stderr are the dashboard's logs and must never contain a token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from evidence_dashboard.config import Settings
from evidence_dashboard.gateway import PredictionOutcome, submit_prediction
from evidence_gateway.testing import ServerProcess, free_port, start_gateway
from evidence_logging import HIDDEN_VALUE, describe_invalid_settings
from pydantic import SecretStr, ValidationError

pytestmark = pytest.mark.slow

# Made-up tokens that no page, log or error may show.
RIGHT_TOKEN = "dashboard-right-token-0123456789abcdef"  # noqa: S105
WRONG_TOKEN = "dashboard-wrong-token-fedcba9876543210"  # noqa: S105
CHILD = Path(__file__).with_name("token_page_run.py")
APP_PATH = Path(__file__).resolve().parents[1] / "src" / "evidence_dashboard" / "app.py"
SAMPLE_MIB_XML = "<Response><ResponseData>CODE1</ResponseData></Response>"


@dataclass(frozen=True)
class TokenGateway:
    """A running gateway that requires RIGHT_TOKEN, and its files."""

    process: ServerProcess
    url: str
    directory: Path

    def log_text(self) -> str:
        """Return everything the gateway process wrote so far."""
        return "".join(
            path.read_text(encoding="utf-8", errors="replace")
            for path in self.directory.glob("gateway-*.log")
        )


@dataclass(frozen=True)
class PageRun:
    """What the child process printed and what its page showed."""

    returncode: int
    logs: str
    page: dict[str, object]

    @property
    def errors(self) -> list[str]:
        """The page's error messages."""
        errors = self.page.get("errors", [])
        assert isinstance(errors, list)
        return [str(error) for error in errors]


@pytest.fixture(scope="module")
def token_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenGateway]:
    """A gateway outside local mode whose /v1 routes require RIGHT_TOKEN."""
    directory = tmp_path_factory.mktemp("dashboard_token_gateway")
    # Without metadata.json in the artifact directory, the fallback's reasons get plain terms.
    artifact_dir = directory / "model"
    artifact_dir.mkdir()
    process, url = start_gateway(
        directory,
        f"http://127.0.0.1:{free_port()}",
        artifact_dir,
        GATEWAY_LOCAL_MODE="false",
        GATEWAY_API_TOKEN=RIGHT_TOKEN,
    )
    try:
        yield TokenGateway(process, url, directory)
    finally:
        process.stop()


def submit(url: str, token: str | None) -> PredictionOutcome:
    """Score the sample MIB report through ``url`` with ``token`` as the bearer token."""
    return submit_prediction(
        url,
        policy_number="DASH-TOKEN-0",
        mib_xml=SAMPLE_MIB_XML,
        rx_xml=None,
        timeout=10.0,
        bearer_token=None if token is None else SecretStr(token),
    )


def run_page(tmp_path: Path, gateway_url: str, token: str | None) -> PageRun:
    """Run the page in a child process with DASHBOARD_GATEWAY_TOKEN set to ``token``."""
    result_path = tmp_path / "page.json"
    env = {name: value for name, value in os.environ.items() if not name.startswith("DASHBOARD_")}
    env.update(
        {
            "DASHBOARD_GATEWAY_URL": gateway_url,
            "DASHBOARD_STORE_PATH": str(tmp_path / "store.sqlite3"),
            "DASHBOARD_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
            "DASHBOARD_ARTIFACT_DIR": str(tmp_path / "model"),
        }
    )
    if token is not None:
        env["DASHBOARD_GATEWAY_TOKEN"] = token
    completed = subprocess.run(
        [sys.executable, str(CHILD), str(APP_PATH), str(result_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    page = json.loads(result_path.read_text("utf-8")) if result_path.exists() else {}
    return PageRun(completed.returncode, completed.stdout + completed.stderr, page)


def test_submit_with_right_token_scores(token_gateway: TokenGateway) -> None:
    """The configured token is sent as a bearer token, and the gateway scores the pair."""
    outcome = submit(token_gateway.url, RIGHT_TOKEN)

    assert outcome.error is None
    assert outcome.ok
    assert outcome.http_status == 200
    assert outcome.body["model_version"] == "RULE_BASED"


@pytest.mark.parametrize("token", [None, WRONG_TOKEN], ids=["no-token", "wrong-token"])
def test_submit_rejected_names_setting(token_gateway: TokenGateway, token: str | None) -> None:
    """A 401 error names DASHBOARD_GATEWAY_TOKEN and the fix, and quotes no token."""
    outcome = submit(token_gateway.url, token)

    assert not outcome.ok
    assert outcome.http_status == 401
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 401: ")
    assert "set DASHBOARD_GATEWAY_TOKEN to the gateway's GATEWAY_API_TOKEN" in outcome.error
    assert RIGHT_TOKEN not in outcome.error
    assert WRONG_TOKEN not in outcome.error
    assert RIGHT_TOKEN not in json.dumps(outcome.body)
    assert WRONG_TOKEN not in json.dumps(outcome.body)


def test_submit_rejected_says_token_missing_or_wrong(token_gateway: TokenGateway) -> None:
    """The 401 message distinguishes a missing token from a rejected one."""
    missing = submit(token_gateway.url, None)
    wrong = submit(token_gateway.url, WRONG_TOKEN)

    assert missing.error is not None
    assert "DASHBOARD_GATEWAY_TOKEN is not set" in missing.error
    assert wrong.error is not None
    assert "rejected the bearer token in DASHBOARD_GATEWAY_TOKEN" in wrong.error


def test_page_with_right_token_scores(token_gateway: TokenGateway, tmp_path: Path) -> None:
    """With DASHBOARD_GATEWAY_TOKEN set, the form shows the score, and no output has the token."""
    run = run_page(tmp_path, token_gateway.url, RIGHT_TOKEN)

    assert run.returncode == 0, run.logs[-3000:]
    assert run.page["submitted"] is True
    assert run.page["exceptions"] == []
    assert [error for error in run.errors if "did not score" in error] == []
    metrics = run.page["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["Model version"] == "RULE_BASED"
    assert RIGHT_TOKEN not in run.logs
    assert RIGHT_TOKEN not in str(run.page)
    assert RIGHT_TOKEN not in token_gateway.log_text()


@pytest.mark.parametrize("token", [None, "", WRONG_TOKEN], ids=["unset", "empty", "wrong"])
def test_page_rejected_token_names_setting(
    token_gateway: TokenGateway, tmp_path: Path, token: str | None
) -> None:
    """A 401 shows an error naming DASHBOARD_GATEWAY_TOKEN, and no page or log has a token."""
    run = run_page(tmp_path, token_gateway.url, token)

    assert run.returncode == 0, run.logs[-3000:]
    assert run.page["submitted"] is True
    form_errors = [error for error in run.errors if "did not score" in error]
    assert len(form_errors) == 1
    assert "HTTP 401" in form_errors[0]
    assert "set DASHBOARD_GATEWAY_TOKEN to the gateway's GATEWAY_API_TOKEN" in form_errors[0]
    for secret in (RIGHT_TOKEN, WRONG_TOKEN):
        assert secret not in run.logs
        assert secret not in str(run.page)
        assert secret not in token_gateway.log_text()
    logged = [json.loads(line) for line in run.logs.splitlines() if line.startswith("{")]
    rejected = [line for line in logged if line["event"].startswith("test prediction rejected")]
    assert [line["http_status"] for line in rejected] == [401]


def test_page_invalid_token_setting_hidden(tmp_path: Path, unused_port: int) -> None:
    """An invalid DASHBOARD_GATEWAY_TOKEN shows the settings error with the value hidden."""
    invalid = "CANARY token with spaces 0123456789"
    run = run_page(tmp_path, f"http://127.0.0.1:{unused_port}", invalid)

    assert run.returncode == 0, run.logs[-3000:]
    assert run.page["submitted"] is False
    assert len(run.errors) == 1
    assert f"DASHBOARD_GATEWAY_TOKEN={HIDDEN_VALUE}" in run.errors[0]
    assert "cannot be sent in a bearer token" in run.errors[0]
    assert "CANARY" not in str(run.page)
    assert "CANARY" not in run.logs


@pytest.mark.parametrize("value", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
def test_settings_blank_token_unset(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty or blank DASHBOARD_GATEWAY_TOKEN means no token, as for GATEWAY_API_TOKEN."""
    monkeypatch.setenv("DASHBOARD_GATEWAY_TOKEN", value)

    assert Settings().gateway_token is None


def test_settings_token_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid token is kept whole, and neither repr nor str of the settings shows it."""
    monkeypatch.setenv("DASHBOARD_GATEWAY_TOKEN", RIGHT_TOKEN)
    settings = Settings()

    assert settings.gateway_token is not None
    assert settings.gateway_token.get_secret_value() == RIGHT_TOKEN
    assert RIGHT_TOKEN not in repr(settings)
    assert RIGHT_TOKEN not in str(settings)


@pytest.mark.parametrize(
    "value",
    ["CANARY inner space", "CANARY-line\nbreak", "CANARY-ümlaut", " CANARY-padded "],
    ids=["space", "line-break", "non-ascii", "padded"],
)
def test_settings_invalid_token_rejected(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token that cannot be a bearer token is rejected, and the description hides it."""
    monkeypatch.setenv("DASHBOARD_GATEWAY_TOKEN", value)
    with pytest.raises(ValidationError) as caught:
        Settings()

    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [("gateway_token",)]
    assert "DASHBOARD_GATEWAY_TOKEN contains characters" in errors[0]["msg"]
    description = describe_invalid_settings([(caught.value, Settings)])
    assert f"DASHBOARD_GATEWAY_TOKEN={HIDDEN_VALUE}" in description
    assert "CANARY" not in description
