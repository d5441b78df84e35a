"""Progress bars of the installed ``evidence-train``: on a terminal only, never in a log file."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# 200 pairs is the least that evidence-train's default model trains on (two leaves of 80 rows
# after the 20% hold-out), which keeps each run to a few seconds.
TRAIN_ARGS = ["--synthetic", "200", "--jobs", "2"]


def _command(out: Path, *extra: str) -> list[str]:
    script = Path(sys.executable).with_name("evidence-train")
    return [str(script), *TRAIN_ARGS, "--out", str(out), *extra]


@pytest.mark.parametrize("extra", [[], ["--progress"]], ids=["default", "progress"])
def test_progress_off_when_stderr_is_file(tmp_path: Path, extra: list[str]) -> None:
    """stderr to a file gets no bar and no carriage return, even with --progress."""
    log_path = tmp_path / "train.log"
    with log_path.open("w") as log:
        completed = subprocess.run(
            _command(tmp_path / "model", *extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=240,
            check=False,
        )

    text = log_path.read_text(encoding="utf-8")
    assert completed.returncode == 0, text
    assert "\r" not in text
    assert "features:" not in text
    assert "training:" not in text


def _run_on_terminal(command: list[str]) -> tuple[int, str]:
    """Run ``command`` with stderr on a pseudo-terminal; return its status and that output."""
    primary, secondary = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm would draw its bars 0 characters wide.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=secondary, stdin=subprocess.DEVNULL
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            # Linux raises EIO once the last writer closed the terminal.
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return process.wait(timeout=240), b"".join(chunks).decode("utf-8", "replace")


def test_progress_on_when_stderr_is_terminal(tmp_path: Path) -> None:
    """stderr on a terminal shows both the feature and the training bar."""
    status, text = _run_on_terminal(_command(tmp_path / "model"))

    assert status == 0, text
    assert "features:" in text
    assert "training:" in text


def test_no_progress_hides_bars_on_terminal(tmp_path: Path) -> None:
    """--no-progress hides the bars on a terminal too."""
    status, text = _run_on_terminal(_command(tmp_path / "model", "--no-progress"))

    assert status == 0, text
    assert "features:" not in text
    assert "training:" not in text
