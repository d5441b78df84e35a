"""``orphan_guard``: the parent-death signal is set and the command replaces the guard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from evidence_gateway.stack.orphan_guard import main

GUARD = [sys.executable, "-m", "evidence_gateway.stack.orphan_guard"]
# Prints this process's id and its parent-death signal (prctl PR_GET_PDEATHSIG is 2).
REPORT = (
    "import ctypes, os; value = ctypes.c_int(); "
    "ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0); "
    "print(os.getpid(), value.value)"
)


def _run_guarded(pidfile: Path, *separator: str) -> subprocess.CompletedProcess[str]:
    """Run ``print('ran')`` through the guard with ``--parent-pidfile pidfile``."""
    return subprocess.run(
        [
            *GUARD,
            "--parent-pidfile",
            str(pidfile),
            *separator,
            sys.executable,
            "-c",
            "print('ran')",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only")
def test_guard_sets_sigterm_and_keeps_pid() -> None:
    """The command runs in the guard's own process, with SIGTERM (15) as its death signal."""
    process = subprocess.Popen(
        [*GUARD, sys.executable, "-c", REPORT], stdout=subprocess.PIPE, text=True
    )
    output, _ = process.communicate(timeout=30)

    pid, death_signal = output.split()
    assert process.returncode == 0
    assert int(pid) == process.pid
    assert int(death_signal) == 15


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only")
def test_guard_signal_option_sets_sigkill() -> None:
    """--signal KILL makes SIGKILL (9) the command's parent-death signal."""
    output = subprocess.run(
        [*GUARD, "--signal", "KILL", sys.executable, "-c", REPORT],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout

    assert output.split()[1] == "9"


def test_guard_rejects_unknown_signal(capsys: pytest.CaptureFixture[str]) -> None:
    """A signal outside TERM, INT and KILL is an invalid argument: exit code 2."""
    assert main(["--signal", "HUP", sys.executable, "-c", "pass"]) == 2
    assert "invalid choice: 'HUP'" in capsys.readouterr().err


def test_command_without_guard_has_no_death_signal() -> None:
    """The check above can fail: a plain child reports no parent-death signal (0)."""
    output = subprocess.run(
        [sys.executable, "-c", REPORT], capture_output=True, text=True, check=True, timeout=30
    ).stdout

    assert output.split()[1] == "0"


def test_guard_passes_exit_code_and_arguments() -> None:
    """Arguments reach the command unchanged, and its exit code is the guard's."""
    result = subprocess.run(
        [*GUARD, sys.executable, "-c", "import sys; print(sys.argv[1:]); sys.exit(7)", "a b", ""],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 7
    assert result.stdout.strip() == "['a b', '']"


def test_guard_without_command(capsys: pytest.CaptureFixture[str]) -> None:
    """No command, or only the separator: exit code 2, the usage line and the reason."""
    for argv in ([], ["--"], ["--parent-pidfile", "x"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "usage: python -m evidence_gateway.stack.orphan_guard" in err
        assert "missing COMMAND" in err


def test_guard_parent_matches_pidfile(tmp_path: Path) -> None:
    """The pidfile names the guard's real parent (this test): the command runs."""
    pidfile = tmp_path / "parent.pid"
    pidfile.write_text(f"{os.getpid()}\n")

    result = _run_guarded(pidfile, "--")

    assert result.returncode == 0
    assert result.stdout.strip() == "ran"


def test_guard_parent_gone_does_not_start(tmp_path: Path) -> None:
    """The pidfile names another process, as after the parent died: exit 1, command not run."""
    pidfile = tmp_path / "parent.pid"
    pidfile.write_text(f"{os.getpid() + 1_000_000}\n")

    result = _run_guarded(pidfile, "--")

    assert result.returncode == 1
    assert result.stdout == ""
    assert f"(pid {os.getpid() + 1_000_000}, from {pidfile}) exited" in result.stderr


def test_guard_unreadable_pidfile_starts(tmp_path: Path) -> None:
    """A missing or garbled pidfile does not block the start: the command runs."""
    garbled = tmp_path / "garbled.pid"
    garbled.write_text("not a pid")
    for pidfile in (tmp_path / "missing.pid", garbled):
        result = _run_guarded(pidfile)

        assert result.returncode == 0
        assert result.stdout.strip() == "ran"


def test_guard_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    """A command not on PATH: exit code 127 and a message that names it."""
    assert main(["no-such-command-for-orphan-guard"]) == 127
    err = capsys.readouterr().err
    assert "command not found: 'no-such-command-for-orphan-guard'" in err


def test_guard_command_not_executable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A command that cannot be run: exit code 126 and a message that names it."""
    script = tmp_path / "not-a-program"
    script.write_bytes(b"\x00\x01binary garbage")
    script.chmod(0o755)

    assert main([str(script)]) == 126
    assert str(script) in capsys.readouterr().err
