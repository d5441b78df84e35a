"""Tests of the evidence-train command line that need no training data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_model_client.artifact import ModelArtifact
from evidence_training.cli import app
from evidence_training.options import MAX_SEED, TrainingOptions
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


def fast_train_args(out: Path, *extra: str) -> list[str]:
    """Return arguments for a 20-pair run that would print its parse counts after the data."""
    return ["--synthetic", "20", "--jobs", "1", "--no-progress", "--out", str(out), *extra]


def unwrapped(output: str) -> str:
    """Return the output with Rich's box borders removed and wrapped lines joined by a space.

    typer reads TERMINAL_WIDTH when it first draws help or an error in this process, so a message
    that quotes a long temporary path may wrap whatever width a later runner sets.
    """
    lines = (line.strip().strip("│╭╮╰╯─").strip() for line in output.splitlines())
    return " ".join(line for line in lines if line)


# Printed only after the training set was built, so its absence shows that no data work ran.
DATA_BUILT_LINE = "documents that failed to parse"


@pytest.mark.parametrize("seed", ["-1", "-5", str(MAX_SEED + 1), "1" + "0" * 30])
def test_cli_seed_out_of_range_fails_early(tmp_path: Path, seed: str) -> None:
    """A seed outside 0 to 2**32 - 1 exits 2 naming the option and value, before any data."""
    out = tmp_path / "model"

    result = runner.invoke(app, fast_train_args(out, "--seed", seed))

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--seed'" in unwrapped(result.output)
    assert f"seed {seed} is not in the range 0 to {MAX_SEED}" in unwrapped(result.output)
    assert "pass a seed in that range" in unwrapped(result.output)
    assert DATA_BUILT_LINE not in unwrapped(result.output)
    assert not out.exists()


def test_script_seed_error_one_line(tmp_path: Path) -> None:
    """The installed console script reports a bad seed on one stderr line, with no traceback."""
    command = Path(sys.executable).with_name("evidence-train")
    env = {**os.environ, "COLUMNS": "200", "TERMINAL_WIDTH": "200"}

    completed = subprocess.run(
        [str(command), *fast_train_args(tmp_path / "model", "--seed", "-5")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    seed_lines = [line for line in completed.stderr.splitlines() if "'--seed'" in line]
    assert len(seed_lines) == 1, completed.stderr
    assert "seed -5 is not in the range" in seed_lines[0]
    assert DATA_BUILT_LINE not in completed.stdout


def test_training_options_seed_bounds() -> None:
    """TrainingOptions accepts seeds 0 and 2**32 - 1 and rejects the integers just outside."""
    assert TrainingOptions(seed=0).seed == 0
    assert TrainingOptions(seed=MAX_SEED).seed == MAX_SEED
    with pytest.raises(ValueError, match="seed -1 is not in the range"):
        TrainingOptions(seed=-1)
    with pytest.raises(ValueError, match=f"seed {MAX_SEED + 1} is not in the range"):
        TrainingOptions(seed=MAX_SEED + 1)


def test_cli_out_existing_file_fails_early(tmp_path: Path) -> None:
    """--out naming a regular file exits 2 before any data and leaves the file unchanged."""
    out = tmp_path / "model"
    out.write_text("not a directory\n", encoding="utf-8")

    result = runner.invoke(app, fast_train_args(out))

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--out'" in unwrapped(result.output)
    assert f"'{out}' exists and is not a directory" in unwrapped(result.output)
    assert "pass a directory path" in unwrapped(result.output)
    assert DATA_BUILT_LINE not in unwrapped(result.output)
    assert out.read_text(encoding="utf-8") == "not a directory\n"


@pytest.mark.parametrize("below", ["model", "a/b/model"])
def test_cli_out_under_file_fails_early(tmp_path: Path, below: str) -> None:
    """--out one or several levels below a regular file exits 2 naming that file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    out = blocker / below

    result = runner.invoke(app, fast_train_args(out))

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--out'" in unwrapped(result.output)
    assert f"cannot create directory '{out}' because '{blocker}'" in unwrapped(result.output)
    assert "is not a directory" in unwrapped(result.output)
    assert DATA_BUILT_LINE not in unwrapped(result.output)
    assert blocker.is_file()


def test_cli_out_broken_symlink_fails_early(tmp_path: Path) -> None:
    """--out naming a symbolic link to a missing path exits 2 and names the link."""
    out = tmp_path / "model"
    out.symlink_to(tmp_path / "missing")

    result = runner.invoke(app, fast_train_args(out))

    assert result.exit_code == 2, result.output
    assert f"'{out}' is a symbolic link to a path that does not exist" in unwrapped(result.output)
    assert DATA_BUILT_LINE not in unwrapped(result.output)
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root may write to any directory"
)
def test_cli_out_read_only_parent_fails_early(tmp_path: Path) -> None:
    """--out inside a directory without write permission exits 2 before any data."""
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        result = runner.invoke(app, fast_train_args(parent / "model"))
    finally:
        parent.chmod(0o700)

    assert result.exit_code == 2, result.output
    assert f"cannot write to directory '{parent}'" in unwrapped(result.output)
    assert DATA_BUILT_LINE not in unwrapped(result.output)


# Text of a connection's password and token in connections.toml. No message may print it.
SECRET_CANARY = "CANARY-SECRET-7f3a9c"  # noqa: S105 - test value


def run_register(
    tmp_path: Path, artifact: ModelArtifact, connections_toml: str | None, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``evidence-train register`` with a Snowflake folder of this test only.

    SNOWFLAKE_HOME names an existing folder, so the connector reads connections.toml there and
    never the developer's own files, and every other SNOWFLAKE_* variable is removed. A missing
    connection name makes the connector raise while it builds the connection object, before it
    opens any socket (snowflake-connector-python 4.8.1, ``SnowflakeConnection.__init__``).
    """
    artifact_dir = artifact.save(tmp_path / "model")
    snowflake_home = tmp_path / "snowflake"
    snowflake_home.mkdir()
    if connections_toml is not None:
        connections_file = snowflake_home / "connections.toml"
        connections_file.write_text(connections_toml, encoding="utf-8")
        # The connector warns about a connections file that other users can read.
        connections_file.chmod(0o600)
    env = {name: value for name, value in os.environ.items() if not name.startswith("SNOWFLAKE")}
    env.update(
        {
            "SNOWFLAKE_HOME": str(snowflake_home),
            "HOME": str(tmp_path),
            "COLUMNS": "200",
            "TERMINAL_WIDTH": "200",
        }
    )
    command = Path(sys.executable).with_name("evidence-train")
    return subprocess.run(
        [str(command), "register", "--artifact", str(artifact_dir), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_script_register_without_connection(tmp_path: Path, small_artifact: ModelArtifact) -> None:
    """No connections.toml: exit 2 with one stderr line naming the connection and the file."""
    completed = run_register(tmp_path, small_artifact, None)
    connections_file = tmp_path / "snowflake" / "connections.toml"

    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.splitlines()) == 1, completed.stderr
    message = completed.stderr.strip()
    assert message.startswith(
        "error: cannot open a Snowflake session with connection 'default': "
        "Invalid connection_name 'default', known ones are []."
    )
    assert f"Add or fix the [default] section in {connections_file}" in message
    assert "set SNOWFLAKE_HOME" in message
    assert "pass --connection" in message
    assert completed.stdout == ""


def test_script_register_unknown_connection(tmp_path: Path, small_artifact: ModelArtifact) -> None:
    """--connection naming no section lists the defined names and prints no password or token."""
    connections_toml = (
        "[other]\n"
        'account = "example-account"\n'
        'user = "deployer"\n'
        f'password = "{SECRET_CANARY}"\n'
        f'token = "{SECRET_CANARY}"\n'
    )

    completed = run_register(tmp_path, small_artifact, connections_toml, "--connection", "prod")

    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.splitlines()) == 1, completed.stderr
    assert "with connection 'prod'" in completed.stderr
    assert "known ones are ['other']" in completed.stderr
    assert "[prod] section" in completed.stderr
    assert SECRET_CANARY not in completed.stderr + completed.stdout
