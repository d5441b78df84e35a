"""``evidence-persistence`` with invalid settings: exit status 2 and one line per variable.

The commands run as subprocesses in a temporary directory, so a command that started anyway
would create its files there, and ``subprocess.run`` kills it at the timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_persistence.config import Settings
from pydantic import ValidationError

CLI = Path(sys.executable).with_name("evidence-persistence")
PASSPHRASE = "pass-8c2b-PERSISTENCE-SECRET"  # noqa: S105 (a made-up value the output must not show)


def _run_cli(
    args: list[str], settings: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``settings`` in place of any PERSISTENCE_* or SNOWFLAKE_* variable."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PERSISTENCE_", "SNOWFLAKE_"))
    }
    env.update(settings)
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


@pytest.mark.parametrize(
    "args", [["worker", "--once"], ["status"], ["dead-letters", "list"]], ids=" ".join
)
def test_cli_one_invalid_setting(args: list[str], tmp_path: Path) -> None:
    """Each command names the variable, its value, the reason and the fix, and creates nothing."""
    result = _run_cli(args, {"PERSISTENCE_QUEUE_SYNCHRONOUS": "OFF"}, tmp_path)

    assert 2 == result.returncode, result.stderr
    assert [
        "error: invalid setting in the environment:",
        "  PERSISTENCE_QUEUE_SYNCHRONOUS='OFF': Input should be 'FULL' or 'NORMAL'",
        "To fix: set PERSISTENCE_QUEUE_SYNCHRONOUS to a valid value or unset it to use the "
        "default.",
    ] == result.stderr.splitlines()
    assert [] == list(tmp_path.iterdir())


def test_worker_several_invalid_settings(tmp_path: Path) -> None:
    """Every invalid variable is listed, and the secret passphrase is not shown."""
    result = _run_cli(
        ["worker", "--once"],
        {
            "PERSISTENCE_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": PASSPHRASE,
            "PERSISTENCE_BATCH_SIZE": "0",
            "PERSISTENCE_METRICS_PORT": "-5",
            "PERSISTENCE_LOG_LEVEL": "trace",
        },
        tmp_path,
    )

    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert PASSPHRASE not in result.stderr
    assert result.stderr.startswith("error: 3 invalid settings in the environment:\n")
    assert "  PERSISTENCE_BATCH_SIZE='0': Input should be greater than or equal to 1" in (
        result.stderr
    )
    assert "  PERSISTENCE_METRICS_PORT='-5': Input should be greater than or equal to 0" in (
        result.stderr
    )
    assert "  PERSISTENCE_LOG_LEVEL='trace': Input should be 'DEBUG'" in result.stderr
    assert "To fix: set each variable shown with a value" in result.stderr
    assert [] == list(tmp_path.iterdir())


def test_worker_negative_store_busy_timeout(tmp_path: Path) -> None:
    """A negative store busy timeout is named with its value, the bound and the fix."""
    result = _run_cli(["worker", "--once"], {"PERSISTENCE_STORE_BUSY_TIMEOUT_MS": "-1"}, tmp_path)

    assert 2 == result.returncode, result.stderr
    assert [
        "error: invalid setting in the environment:",
        "  PERSISTENCE_STORE_BUSY_TIMEOUT_MS='-1': Input should be greater than or equal to 0",
        "To fix: set PERSISTENCE_STORE_BUSY_TIMEOUT_MS to a valid value or unset it to use the "
        "default.",
    ] == result.stderr.splitlines()
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-1", "Input should be greater than or equal to 0"),
        ("inf", "Input should be a finite number"),
        ("nan", "Input should be a finite number"),
        ("soon", "Input should be a valid number, unable to parse string as a number"),
    ],
)
def test_worker_invalid_stop_grace(value: str, reason: str, tmp_path: Path) -> None:
    """A negative, infinite or unparsable stop grace time is named with its value and the fix."""
    result = _run_cli(["worker", "--once"], {"PERSISTENCE_STOP_GRACE_SECONDS": value}, tmp_path)

    assert 2 == result.returncode, result.stderr
    assert [
        "error: invalid setting in the environment:",
        f"  PERSISTENCE_STOP_GRACE_SECONDS={value!r}: {reason}",
        "To fix: set PERSISTENCE_STOP_GRACE_SECONDS to a valid value or unset it to use the "
        "default.",
    ] == result.stderr.splitlines()
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("value", "level"), [("INFO", "INFO"), ("info", "INFO"), ("Warning", "WARNING")]
)
def test_log_level_any_case(value: str, level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The level is read in either case, as the gateway's and the model server's are."""
    monkeypatch.setenv("PERSISTENCE_LOG_LEVEL", value)

    assert Settings().log_level == level


def test_log_level_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSISTENCE_LOG_LEVEL", "Loud")

    with pytest.raises(ValidationError, match="log_level") as caught:
        Settings()

    assert caught.value.errors()[0]["input"] == "Loud"
