"""Tests of the evidence-train command line that need no training data."""

from __future__ import annotations

from evidence_training.cli import app
from evidence_training.registry import DEFAULT_SERVICE_NAME
from typer.testing import CliRunner

# A wide terminal keeps Rich from wrapping error messages across box lines.
runner = CliRunner(env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})


def test_cli_help_lists_training_options() -> None:
    """--help exits 0 and documents the data, output, version and model options."""
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    for option in ("--synthetic", "--data", "--seed", "--out", "--version", "--model", "register"):
        assert option in result.output


def test_cli_register_help_lists_service_options() -> None:
    """register --help documents the connection and inference-service options."""
    result = runner.invoke(app, ["register", "--help"])

    assert result.exit_code == 0
    for option in ("--artifact", "--connection", "--compute-pool", "--max-instances"):
        assert option in result.output
    assert f"[default: {DEFAULT_SERVICE_NAME}]" in result.output


def test_cli_without_data_source_fails() -> None:
    """Neither --synthetic nor --data is a usage error with exit code 2."""
    result = runner.invoke(app, [])

    assert result.exit_code == 2
    assert "exactly one of --synthetic" in result.output


def test_cli_both_data_sources_fail(tmp_path: object) -> None:
    """--synthetic together with --data is a usage error with exit code 2."""
    result = runner.invoke(app, ["--synthetic", "100", "--data", str(tmp_path)])

    assert result.exit_code == 2
    assert "exactly one of --synthetic" in result.output


def test_cli_training_option_with_register_fails() -> None:
    """A training option placed before the register subcommand is rejected, not ignored."""
    result = runner.invoke(app, ["--synthetic", "100", "register", "--help"])

    assert result.exit_code == 2
    assert "cannot be combined with 'register'" in result.output


def test_cli_register_missing_artifact_fails(tmp_path: object) -> None:
    """register on a directory without an artifact exits 2 with the loader's message."""
    result = runner.invoke(app, ["register", "--artifact", f"{tmp_path}/none", "--no-deploy"])

    assert result.exit_code == 2
    assert "train a model first" in result.output


def test_cli_invalid_version_fails_before_training() -> None:
    """A version with characters Snowflake names cannot hold is rejected before any data work."""
    result = runner.invoke(app, ["--synthetic", "100", "--version", "v2.1"])

    assert result.exit_code == 2
    assert "model version 'v2.1' must be 1-64 letters" in result.output
