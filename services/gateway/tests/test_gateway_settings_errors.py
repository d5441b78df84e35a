"""The gateway's console scripts with invalid settings: exit status 2 and one line per variable.

Each script runs as a subprocess and must exit before it binds a port or starts a process.
Ports are 0 or free ones, so a script that wrongly started would not take a real service's
port, and ``subprocess.run`` kills it at the timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from evidence_gateway.append_status_file import append_status_path
from evidence_gateway.config import Settings
from evidence_gateway.testing import free_port, script_path
from pydantic import ValidationError

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_RX = REPO_ROOT / "data" / "samples" / "01-clean" / "rx.xml"
TOKEN = "tok-5d1e-GATEWAY-SECRET"  # noqa: S105 (a made-up token the output must not show)
_SETTINGS_PREFIXES = (
    "GATEWAY_",
    "MODEL_CLIENT_",
    "MODEL_SERVER_",
    "PERSISTENCE_",
    "DASHBOARD_",
    "SNOWFLAKE_",
    "PROMETHEUS_MULTIPROC_DIR",
    "EVIDENCE_SCORE_TOKEN",
)


def _run(
    command: list[str], settings: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run a console script with ``settings`` in place of any settings of this environment."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(_SETTINGS_PREFIXES)
    }
    env.update(settings)
    return subprocess.run(
        [script_path(command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def _stack_command(var_dir: Path, *options: str) -> list[str]:
    """``evidence-stack --once`` on free ports with its files under ``var_dir``."""
    return [
        "evidence-stack",
        "--once",
        "--root",
        str(REPO_ROOT),
        "--var-dir",
        str(var_dir),
        "--gateway-port",
        str(free_port()),
        "--model-port",
        str(free_port()),
        *options,
    ]


def _run_local_gateway(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run ``evidence-gateway`` in local mode on port 0 with ``settings`` added."""
    return _run(
        ["evidence-gateway"],
        {"GATEWAY_LOCAL_MODE": "true", "GATEWAY_PORT": "0", **settings},
        tmp_path,
    )


def _run_two_workers(
    tmp_path: Path, status_dir: Path | str, **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run ``evidence-gateway`` with two workers, a status directory and ``settings`` added."""
    return _run(
        ["evidence-gateway"],
        {
            "GATEWAY_API_TOKEN": TOKEN,
            "GATEWAY_PORT": "0",
            "GATEWAY_WORKERS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "GATEWAY_APPEND_STATUS_DIR": str(status_dir),
            **settings,
        },
        tmp_path,
    )


def _assert_clean_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert "pydantic" not in result.stderr
    assert TOKEN not in result.stderr
    assert TOKEN not in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("GATEWAY_BODY_TIMEOUT_SECONDS", "0", "Input should be greater than 0"),
        ("GATEWAY_QUEUE_SYNCHRONOUS", "OFF", "Input should be 'FULL' or 'NORMAL'"),
    ],
)
def test_gateway_one_invalid_setting(
    tmp_path: Path, variable: str, value: str, reason: str
) -> None:
    """evidence-gateway names the variable, its value, the reason and the fix.

    For a setting with fixed choices, such as GATEWAY_QUEUE_SYNCHRONOUS, the reason names the
    accepted values.
    """
    result = _run_local_gateway(tmp_path, **{variable: value})

    _assert_clean_failure(result)
    assert [
        "error: invalid setting in the environment:",
        f"  {variable}={value!r}: {reason}",
        f"To fix: set {variable} to a valid value or unset it to use the default.",
    ] == result.stderr.splitlines()
    assert "" == result.stdout


def test_gateway_several_invalid_settings(tmp_path: Path) -> None:
    """Invalid GATEWAY_* and MODEL_CLIENT_* values are all listed, and the token is not shown."""
    result = _run(
        ["evidence-gateway"],
        {
            "GATEWAY_API_TOKEN": TOKEN,
            "GATEWAY_PORT": "0",
            "GATEWAY_WORKERS": "0",
            "GATEWAY_LOG_LEVEL": "verbose",
            "MODEL_CLIENT_DEADLINE_MS": "-5",
        },
        tmp_path,
    )

    _assert_clean_failure(result)
    assert result.stderr.startswith("error: 3 invalid settings in the environment:\n")
    assert "  GATEWAY_WORKERS='0': Input should be greater than or equal to 1" in result.stderr
    assert "  GATEWAY_LOG_LEVEL='verbose': Input should be 'debug'" in result.stderr
    assert "  MODEL_CLIENT_DEADLINE_MS='-5': Input should be greater than 0" in result.stderr
    assert "To fix: set each variable shown with a value" in result.stderr


def test_gateway_rule_across_settings(tmp_path: Path) -> None:
    """A document limit above the body limit names both variables but not the token."""
    result = _run(
        ["evidence-gateway"],
        {
            "GATEWAY_API_TOKEN": TOKEN,
            "GATEWAY_PORT": "0",
            "GATEWAY_MAX_DOCUMENT_BYTES": "20000000",
            "GATEWAY_MAX_BODY_BYTES": "1000000",
        },
        tmp_path,
    )

    _assert_clean_failure(result)
    assert (
        "  GATEWAY_MAX_DOCUMENT_BYTES=20000000 exceeds GATEWAY_MAX_BODY_BYTES=1000000; raise the "
        "body limit or lower the document limit"
    ) in result.stderr


def test_gateway_workers_need_metrics_dir(tmp_path: Path) -> None:
    """Several workers without PROMETHEUS_MULTIPROC_DIR stop before the port is bound."""
    result = _run(
        ["evidence-gateway"],
        {"GATEWAY_API_TOKEN": TOKEN, "GATEWAY_PORT": "0", "GATEWAY_WORKERS": "2"},
        tmp_path,
    )

    _assert_clean_failure(result)
    assert (
        "  GATEWAY_WORKERS=2 needs PROMETHEUS_MULTIPROC_DIR, or /metrics shows one worker at a "
        "time; set it to an empty directory that the workers share, or set GATEWAY_WORKERS=1"
    ) in result.stderr


def test_gateway_workers_need_status_dir(tmp_path: Path) -> None:
    """Several workers with a missing GATEWAY_APPEND_STATUS_DIR stop before the port is bound."""
    missing = tmp_path / "missing"
    result = _run_two_workers(tmp_path, missing)

    _assert_clean_failure(result)
    assert (
        f"  GATEWAY_APPEND_STATUS_DIR={missing} is not a directory, and GATEWAY_WORKERS=2 needs "
        "it to share the outcome of queue appends between workers; set it to an existing "
        "directory on a memory file system such as /dev/shm, or set GATEWAY_WORKERS=1"
    ) in result.stderr


def test_gateway_workers_need_writable_status_dir(tmp_path: Path) -> None:
    """An existing directory that takes no file stops the gateway before the port is bound."""
    # /proc takes no new file even for root, whom chmod does not stop.
    result = _run_two_workers(tmp_path, "/proc")

    _assert_clean_failure(result)
    assert (
        "  GATEWAY_APPEND_STATUS_DIR=/proc is not writable (FileNotFoundError: No such file or "
        "directory), and GATEWAY_WORKERS=2 needs to create a file in it to share the outcome of "
        "queue appends between workers; set it to a directory that this user can write, on a "
        "memory file system such as /dev/shm, or set GATEWAY_WORKERS=1"
    ) in result.stderr


@pytest.mark.parametrize("occupant", ["directory", "symlink"])
def test_gateway_worker_start_failure_exit_status(tmp_path: Path, occupant: str) -> None:
    """A worker that cannot attach its status file: one clear error line, then status 3."""
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    queue_path = tmp_path / "queue.sqlite3"
    status_file = append_status_path(status_dir, queue_path)
    # The directory check passes, but the file's own name is taken by something that the
    # worker cannot open as the status file.
    if occupant == "directory":
        status_file.mkdir()
    else:
        status_file.symlink_to(tmp_path / "elsewhere")
    result = _run_two_workers(
        tmp_path,
        status_dir,
        GATEWAY_PORT=str(free_port()),
        GATEWAY_QUEUE_PATH=str(queue_path),
    )
    # The JSON log lines go to stdout, and uvicorn's supervisor writes plain text to stderr.
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    attach_errors = [
        line for line in lines if line["event"].startswith("append status file attach failed")
    ]
    expected_error = "IsADirectoryError" if occupant == "directory" else "OSError"

    assert result.returncode == 3, result.stderr
    assert attach_errors, result.stdout
    for line in attach_errors:
        assert line["level"] == "error"
        assert line["path"] == str(status_file)
        assert line["exception_type"] == expected_error
        assert str(status_file) in line["error"]
        assert "GATEWAY_APPEND_STATUS_DIR" in line["event"]
    assert "failed to start, stopping the parent process" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.parametrize("token", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_gateway_token_missing(tmp_path: Path, token: str | None) -> None:
    """Without a token and outside local mode, the message names the variable and the fix."""
    settings = {"GATEWAY_PORT": "0"}
    if token is not None:
        settings["GATEWAY_API_TOKEN"] = token
    result = _run(["evidence-gateway"], settings, tmp_path)

    _assert_clean_failure(result)
    assert "  GATEWAY_API_TOKEN is not set or empty; set it to the bearer token" in result.stderr
    assert "reads the environment only, not a .env file" in result.stderr


def test_gateway_help_needs_no_settings(tmp_path: Path) -> None:
    """--help prints the usage and the settings it reads, even where no setting is valid."""
    result = _run(["evidence-gateway", "--help"], {"GATEWAY_PORT": "-1"}, tmp_path)

    assert 0 == result.returncode, result.stderr
    assert "Usage: evidence-gateway [OPTIONS]" in result.stdout
    for name in ("GATEWAY_PORT", "GATEWAY_API_TOKEN", "PROMETHEUS_MULTIPROC_DIR"):
        assert name in result.stdout
    assert "invalid setting" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--port", "8000"], "No such option: --port"),
        (["serve"], "Got unexpected extra argument"),
        (["extra", "words"], "Got unexpected extra argument"),
    ],
)
def test_gateway_rejects_arguments(tmp_path: Path, arguments: list[str], reason: str) -> None:
    """An argument gets a usage error with status 2 rather than a server that ignores it."""
    # The environment is valid, so a gateway that ignored the arguments would serve on port 0
    # until _run's timeout and fail the test.
    result = _run(
        ["evidence-gateway", *arguments],
        {"GATEWAY_LOCAL_MODE": "true", "GATEWAY_PORT": "0"},
        tmp_path,
    )

    assert 2 == result.returncode, result.stderr
    assert reason in result.stderr
    assert "Try 'evidence-gateway --help' for help." in result.stderr
    assert "" == result.stdout


def test_score_in_process_invalid_settings(tmp_path: Path) -> None:
    """evidence-score --in-process lists invalid settings before it touches the queue file."""
    result = _run(
        ["evidence-score", "--rx", str(SAMPLE_RX), "--in-process", "--create-queue"],
        {
            "GATEWAY_API_TOKEN": TOKEN,
            "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
            "GATEWAY_MAX_BATCH_ROWS": "0",
            "MODEL_CLIENT_MAX_RETRIES": "9",
        },
        tmp_path,
    )

    _assert_clean_failure(result)
    assert "  GATEWAY_MAX_BATCH_ROWS='0': Input should be greater than or equal to 1" in (
        result.stderr
    )
    assert "  MODEL_CLIENT_MAX_RETRIES='9': Input should be less than or equal to 5" in (
        result.stderr
    )
    assert not (tmp_path / "queue.sqlite3").exists()


def test_score_in_process_one_invalid_setting(tmp_path: Path) -> None:
    """One invalid MODEL_CLIENT_* value, which only the app's lifespan would read, is named."""
    result = _run(
        ["evidence-score", "--rx", str(SAMPLE_RX), "--in-process", "--create-queue"],
        {
            "GATEWAY_QUEUE_PATH": str(tmp_path / "queue.sqlite3"),
            "MODEL_CLIENT_BASE_URL": "model-server:5000",
        },
        tmp_path,
    )

    _assert_clean_failure(result)
    assert result.stderr.startswith("error: invalid setting in the environment:\n")
    assert "  MODEL_CLIENT_BASE_URL='model-server:5000': " in result.stderr
    assert "To fix: set MODEL_CLIENT_BASE_URL to a valid value" in result.stderr
    assert "" == result.stdout


def test_stack_invalid_settings_start_nothing(tmp_path: Path) -> None:
    """evidence-stack lists the invalid settings of its processes and creates no var/."""
    var_dir = tmp_path / "var"
    result = _run(
        _stack_command(var_dir, "--no-dashboard"),
        {
            "MODEL_CLIENT_AUTH_TOKEN": TOKEN,
            "MODEL_SERVER_MAX_ROWS": "0",
            "GATEWAY_BODY_TIMEOUT_SECONDS": "0",
            "PERSISTENCE_LEASE_SECONDS": "never",
        },
        tmp_path,
    )

    _assert_clean_failure(result)
    assert result.stderr.startswith("error: 3 invalid settings in the environment:\n")
    assert "  MODEL_SERVER_MAX_ROWS='0': " in result.stderr
    assert "  GATEWAY_BODY_TIMEOUT_SECONDS='0': " in result.stderr
    assert "  PERSISTENCE_LEASE_SECONDS='never': " in result.stderr
    assert not var_dir.exists()


def test_stack_invalid_dashboard_setting(tmp_path: Path) -> None:
    """evidence-stack checks DASHBOARD_* through the dashboard's command before it starts."""
    var_dir = tmp_path / "var"
    result = _run(
        _stack_command(var_dir, "--dashboard-port", str(free_port())),
        {"DASHBOARD_MAX_ROWS": "5"},
        tmp_path,
    )

    _assert_clean_failure(result)
    assert result.stderr.startswith("error: invalid setting in the environment:\n")
    assert "  DASHBOARD_MAX_ROWS='5': Input should be greater than or equal to 100" in (
        result.stderr
    )
    assert not var_dir.exists()


def test_stack_lists_dashboard_with_others(tmp_path: Path) -> None:
    """An invalid DASHBOARD_* setting is listed in the same run as the other processes' ones."""
    var_dir = tmp_path / "var"
    result = _run(
        _stack_command(var_dir, "--dashboard-port", str(free_port())),
        {"DASHBOARD_MAX_ROWS": "5", "PERSISTENCE_BATCH_SIZE": "0"},
        tmp_path,
    )

    _assert_clean_failure(result)
    assert "  PERSISTENCE_BATCH_SIZE='0': " in result.stderr
    assert "  DASHBOARD_MAX_ROWS='5': " in result.stderr
    assert not var_dir.exists()


# Another invalid setting in every port test, so that a stack whose port check wrongly passed
# still exits at the settings check, before it binds a default port.
_SAFETY_SETTING = {"PERSISTENCE_BATCH_SIZE": "0"}


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("GATEWAY_PORT", "abc", "Input should be a valid integer"),
        ("GATEWAY_PORT", "", "Input should be a valid integer"),
        ("MODEL_SERVER_PORT", "x", "Input should be a valid integer"),
        ("MODEL_SERVER_PORT", "65536", "Input should be less than or equal to 65535"),
        ("DASHBOARD_PORT", "0", "Input should be greater than or equal to 1"),
        ("DASHBOARD_PORT", "-1", "Input should be greater than or equal to 1"),
    ],
)
def test_stack_invalid_port_variable(tmp_path: Path, name: str, value: str, reason: str) -> None:
    """A bad port variable gets the settings message: variable, value and fix, and no start."""
    var_dir = tmp_path / "var"
    command = ["evidence-stack", "--once", "--root", str(REPO_ROOT), "--var-dir", str(var_dir)]

    result = _run(command, {name: value, **_SAFETY_SETTING}, tmp_path)

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: invalid setting in the environment:\n")
    assert f"  {name}={value!r}: {reason}" in result.stderr
    assert f"To fix: set {name} to a valid value or unset it to use the default." in result.stderr
    assert "Invalid value for" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not var_dir.exists()


def test_stack_lists_every_invalid_port(tmp_path: Path) -> None:
    """All three bad port variables appear in one message."""
    var_dir = tmp_path / "var"
    command = ["evidence-stack", "--once", "--root", str(REPO_ROOT), "--var-dir", str(var_dir)]
    ports = {"GATEWAY_PORT": "abc", "MODEL_SERVER_PORT": "", "DASHBOARD_PORT": "0"}

    result = _run(command, {**ports, **_SAFETY_SETTING}, tmp_path)

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: 3 invalid settings in the environment:\n")
    for name, value in ports.items():
        assert f"  {name}={value!r}: " in result.stderr
    assert not var_dir.exists()


def test_stack_port_option_replaces_bad_variable(tmp_path: Path) -> None:
    """--gateway-port and --model-port win over invalid GATEWAY_PORT and MODEL_SERVER_PORT."""
    var_dir = tmp_path / "var"
    result = _run(
        _stack_command(var_dir, "--no-dashboard"),
        {"GATEWAY_PORT": "abc", "MODEL_SERVER_PORT": "", **_SAFETY_SETTING},
        tmp_path,
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: invalid setting in the environment:\n")
    assert "  PERSISTENCE_BATCH_SIZE='0': " in result.stderr
    assert "GATEWAY_PORT" not in result.stderr
    assert "MODEL_SERVER_PORT" not in result.stderr
    assert not var_dir.exists()


@pytest.mark.parametrize("value", ["set-by-deploy-sh", "0123456789ABCDEF", "dde4b34144d5dda8'"])
def test_gateway_spec_hash_not_a_hash(tmp_path: Path, value: str) -> None:
    """A feature spec hash that could never match, such as the deploy placeholder, stops it."""
    result = _run_local_gateway(tmp_path, MODEL_CLIENT_FEATURE_SPEC_HASH=value)

    _assert_clean_failure(result)
    assert "error: invalid setting in the environment:" in result.stderr
    assert f"MODEL_CLIENT_FEATURE_SPEC_HASH={value!r}" in result.stderr
    assert "is not a feature spec hash (16 lowercase hex digits)" in result.stderr


@pytest.mark.parametrize(
    ("value", "level"), [("info", "info"), ("INFO", "info"), ("Warning", "warning")]
)
def test_gateway_log_level_any_case(
    value: str, level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The level is read in either case, as the persistence worker's is."""
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", value)

    assert Settings(local_mode=True).log_level == level


def test_gateway_log_level_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "Loud")

    with pytest.raises(ValidationError, match="log_level") as caught:
        Settings(local_mode=True)

    assert caught.value.errors()[0]["input"] == "Loud"
