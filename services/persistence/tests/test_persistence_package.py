"""Tests of the package surface and the settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import evidence_persistence
import pytest
from evidence_persistence import PredictionQueue
from evidence_persistence.config import Settings, get_settings


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
