"""Tests of the package surface and the settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import evidence_persistence
import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence.config import Settings, get_settings
from pydantic import ValidationError

PERSISTENCE_DOC = Path(__file__).resolve().parents[3] / "docs" / "persistence.md"


def test_package_all_sorted_and_importable() -> None:
    """__all__ is sorted and every name in it exists."""
    assert sorted(evidence_persistence.__all__) == evidence_persistence.__all__
    for name in evidence_persistence.__all__:
        assert hasattr(evidence_persistence, name)


def test_package_import_leaves_snowpark_unloaded() -> None:
    """Producers that import the queue API do not pay for importing Snowpark."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, evidence_persistence; print('snowflake.snowpark' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "False"


def test_settings_defaults(clean_settings: None) -> None:
    """Without variables the queue and store live under var/ and the sink is SQLite."""
    settings = Settings()
    assert Path("var/queue.sqlite3") == settings.queue_path
    assert Path("var/store.sqlite3") == settings.store_path
    assert settings.sink == "sqlite"
    assert settings.queue_synchronous == "NORMAL"
    assert settings.store_raw_evidence is False
    assert settings.metrics_port is None


def test_settings_from_environment(
    clean_settings: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PERSISTENCE_* variables set the fields; get_settings caches one instance."""
    monkeypatch.setenv("PERSISTENCE_QUEUE_PATH", str(tmp_path / "q.sqlite3"))
    monkeypatch.setenv("PERSISTENCE_QUEUE_MAX_DEPTH", "7")
    monkeypatch.setenv("PERSISTENCE_STORE_RAW_EVIDENCE", "true")
    settings = get_settings()
    assert settings is get_settings()
    assert settings.queue_max_depth == 7
    assert settings.store_raw_evidence is True
    queue = PredictionQueue.from_settings()
    assert tmp_path / "q.sqlite3" == queue.path
    assert queue.max_depth == 7


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PERSISTENCE_QUEUE_MAX_DEPTH", "0"),
        ("PERSISTENCE_QUEUE_SYNCHRONOUS", "OFF"),
        ("PERSISTENCE_SINK", "postgres"),
        ("PERSISTENCE_BATCH_SIZE", "0"),
    ],
)
def test_settings_invalid_value_rejected(
    clean_settings: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """An invalid value fails validation with the field named."""
    monkeypatch.setenv(variable, value)
    field = variable.removeprefix("PERSISTENCE_").lower()
    with pytest.raises(ValueError, match=field):
        Settings()


def test_settings_store_lock_defaults(clean_settings: None) -> None:
    """The store waits 5,000 ms per attempt and makes 4 attempts unless set otherwise."""
    settings = Settings()
    assert settings.store_busy_timeout_ms == 5_000
    assert settings.store_lock_retries == 4


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("PERSISTENCE_STORE_BUSY_TIMEOUT_MS", "-1", "greater than or equal to 0"),
        ("PERSISTENCE_STORE_BUSY_TIMEOUT_MS", "soon", "valid integer"),
        ("PERSISTENCE_STORE_LOCK_RETRIES", "0", "greater than or equal to 1"),
    ],
)
def test_settings_store_lock_invalid(
    clean_settings: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    """A negative timeout, a non-number and zero attempts are rejected with the field named."""
    monkeypatch.setenv(variable, value)
    field = variable.removeprefix("PERSISTENCE_").lower()
    with pytest.raises(ValidationError, match=rf"{field}\n  Input should be [^\n]*{reason}"):
        Settings()


def test_settings_documented() -> None:
    """Every setting has a row in the settings table of docs/persistence.md."""
    text = PERSISTENCE_DOC.read_text(encoding="utf-8")
    section = text.split("## Settings (`PERSISTENCE_*`)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name.strip().strip("`") for row in rows for name in row.split("|")[1].split("/")}

    for field in Settings.model_fields:
        name = field.upper()
        if name.startswith("SNOWFLAKE_") and name not in documented:
            assert "SNOWFLAKE_*" in documented
            continue
        assert name in documented
