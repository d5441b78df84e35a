"""``evidence-score`` output: non-XML files, the 401 hint, in-process log lines, a closed stdout."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from evidence_gateway.cli.score import _fallback_note
from evidence_gateway.testing import free_port, script_path

from .score_cli_kit import run_score_cli

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "samples" / "02-diabetic"
RX = ["--rx", str(SAMPLE / "rx.xml")]
TOKEN = "s3cret-token"  # noqa: S105 (a made-up token the output must not show)


def in_process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings of an in-process gateway whose model server is down, so the fallback scores."""
    return {
        "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
        # Nothing listens there, so no model server is needed.
        "MODEL_CLIENT_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "MODEL_CLIENT_REASON_PROFILE_DIR": str(tmp_path / "no-model"),
        **extra,
    }


def log_events(stderr: str) -> list[dict[str, object]]:
    """Return the JSON log lines in ``stderr``, skipping the command's own plain lines."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (b"hello, not xml {\n", ""),
        (b'{"rx": "Jane Example"}', "; it starts with '{', as JSON does."),
    ],
    ids=["text", "json"],
)
def test_score_cli_non_xml_file(tmp_path: Path, content: bytes, hint: str) -> None:
    """A text or JSON file is named not XML, not an empty document, and its text is not echoed."""
    mib = tmp_path / "t.xml"
    mib.write_bytes(content)

    result = run_score_cli(
        ["--mib", str(mib), *RX, "--in-process", "--create-queue"], in_process_env(tmp_path)
    )

    assert result.returncode == 1
    assert "MIB document is not XML: it does not start with an element ('<')" in result.stderr
    assert hint in result.stderr
    assert "ERR_DOCUMENT_EMPTY" not in result.stderr
    assert "Jane" not in result.stderr
    assert "hello" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("token_args", "token_env"),
    [([], {}), (["--token", "wrong"], {}), ([], {"EVIDENCE_SCORE_TOKEN": "wrong"})],
    ids=["none", "wrong-option", "wrong-env"],
)
def test_score_cli_401_names_token_option(
    tmp_path: Path, token_args: list[str], token_env: dict[str, str]
) -> None:
    """A missing or wrong token names --token and EVIDENCE_SCORE_TOKEN, the command's own fix."""
    env = in_process_env(tmp_path, GATEWAY_API_TOKEN=TOKEN, **token_env)
    if not token_env:
        # An empty value sends no token, so a token in the test's environment cannot leak in.
        env["EVIDENCE_SCORE_TOKEN"] = ""

    result = run_score_cli([*RX, "--in-process", "--create-queue", *token_args], env)

    assert result.returncode == 1
    assert (
        "HTTP 401: missing or invalid bearer token; send 'Authorization: Bearer <token>'; "
        "pass --token or set EVIDENCE_SCORE_TOKEN"
    ) in result.stderr
    assert TOKEN not in result.stderr


def test_score_cli_right_token_scores(tmp_path: Path) -> None:
    """The token from EVIDENCE_SCORE_TOKEN passes a gateway that requires it."""
    env = in_process_env(tmp_path, GATEWAY_API_TOKEN=TOKEN, EVIDENCE_SCORE_TOKEN=TOKEN)

    result = run_score_cli([*RX, "--in-process", "--create-queue", "--json"], env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["policy_number"] == "CLI-0001"


@pytest.mark.parametrize(
    ("args", "log_level", "info_shown"),
    [
        ([], None, False),
        (["--verbose"], None, True),
        ([], "info", True),
        (["--verbose"], "error", False),
    ],
    ids=["default", "verbose", "log-level-info", "log-level-wins-over-verbose"],
)
def test_score_cli_in_process_log_lines(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    log_level: str | None,
    info_shown: bool,
) -> None:
    """In-process, only errors are logged unless --verbose or GATEWAY_LOG_LEVEL asks for more."""
    # The subprocess inherits this environment, so the command's own default applies only
    # when it has no GATEWAY_LOG_LEVEL.
    monkeypatch.delenv("GATEWAY_LOG_LEVEL", raising=False)
    env = in_process_env(tmp_path)
    if log_level is not None:
        env["GATEWAY_LOG_LEVEL"] = log_level

    result = run_score_cli([*RX, "--in-process", "--create-queue", *args], env)

    assert result.returncode == 0, result.stderr[-2000:]
    events = log_events(result.stderr)
    info_events = [event["event"] for event in events if event["level"] == "info"]
    if info_shown:
        assert "gateway started" in info_events
        assert "request completed" in info_events
    else:
        assert info_events == []
    # The model server is down. Its warnings are JSON lines only at info level, and otherwise
    # the plain note replaces them.
    warnings = [event["event"] for event in events if event["level"] == "warning"]
    assert ("model call failed, using fallback" in warnings) == info_shown
    assert "rule-based fallback" in result.stderr


def test_score_cli_fallback_note_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fallback score in-process gets one plain stderr line naming the model URL, no JSON."""
    monkeypatch.delenv("GATEWAY_LOG_LEVEL", raising=False)
    env = in_process_env(tmp_path)

    result = run_score_cli([*RX, "--in-process", "--create-queue"], env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "RULE_BASED" in result.stdout
    assert result.stderr.splitlines() == [
        f"note: the model service at {env['MODEL_CLIENT_BASE_URL']} did not score this request "
        "(model_unavailable), so the score above is the rule-based fallback; start the model "
        "server or set MODEL_CLIENT_BASE_URL (--verbose logs each try)"
    ]


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["table", "json"])
def test_score_cli_fail_on_fallback_exits_6(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: list[str]
) -> None:
    """--fail-on-fallback exits 6 after printing the fallback prediction."""
    monkeypatch.delenv("GATEWAY_LOG_LEVEL", raising=False)
    env = in_process_env(tmp_path)

    result = run_score_cli(
        [*RX, "--in-process", "--create-queue", "--fail-on-fallback", *output], env
    )

    assert result.returncode == 6, result.stderr[-2000:]
    assert "RULE_BASED" in result.stdout
    assert "rule-based fallback" in result.stderr


def run_with_closed_stdout(
    args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``evidence-score`` with a stdout pipe whose read end is already closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [script_path("evidence-score"), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["table", "json"])
def test_score_cli_closed_stdout_exits_0(tmp_path: Path, output: list[str]) -> None:
    """A reader that stops early, as `| head -1` does, leaves a scored request at status 0."""
    result = run_with_closed_stdout(
        [*RX, "--in-process", "--create-queue", *output],
        in_process_env(tmp_path, GATEWAY_LOG_LEVEL="error"),
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "BrokenPipeError" not in result.stderr
    assert "Traceback" not in result.stderr


def test_score_cli_closed_stdout_rejection_exits_1(tmp_path: Path) -> None:
    """A rejected request still exits 1 with its message on stderr when stdout is closed."""
    result = run_with_closed_stdout(
        [*RX, "--in-process", "--create-queue", "--policy", "P 1"],
        in_process_env(tmp_path, GATEWAY_LOG_LEVEL="error"),
    )

    assert result.returncode == 1
    assert "HTTP 422: the request body is invalid in 1 place(s); see details" in result.stderr


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["table", "json"])
def test_score_cli_closed_stdout_fail_on_fallback(tmp_path: Path, output: list[str]) -> None:
    """A closed stdout still leaves the fallback note and --fail-on-fallback's status 6."""
    result = run_with_closed_stdout(
        [*RX, "--in-process", "--create-queue", "--fail-on-fallback", *output],
        in_process_env(tmp_path, GATEWAY_LOG_LEVEL="error"),
    )

    assert result.returncode == 6, result.stderr[-2000:]
    assert "so the score above is the rule-based fallback" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("spec_hash_mismatch", "deploy a model trained with this feature library"),
        ("model_request_rejected", "the model service rejected the request"),
        ("model_info_invalid", "check the model artifact"),
        ("features_out_of_range", "check the evidence documents"),
        ("model_timeout", "start the model server or set MODEL_CLIENT_BASE_URL"),
    ],
)
def test_score_cli_fallback_note_per_reason(reason: str, advice: str) -> None:
    """The note's advice fits the reason: a running model server is not told to start."""
    note = _fallback_note(reason, "http://127.0.0.1:5000")

    assert f"({reason})" in note
    assert advice in note
    if reason != "model_timeout":
        assert "start the model server" not in note
