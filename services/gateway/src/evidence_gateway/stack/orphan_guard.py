"""Run a command that receives a signal, SIGTERM by default, when its parent process dies.

supervisord has no setting for this. If supervisord is killed with SIGKILL, its children keep
running and keep their ports, and the next ``make run`` finds the ports taken. The stack
therefore starts each Procfile command as ``python -m evidence_gateway.stack.orphan_guard
[--signal KILL] --parent-pidfile FILE -- COMMAND [ARG ...]``. This module sets the process's
parent-death signal (``prctl(PR_SET_PDEATHSIG)``, Linux only) and then replaces itself with
the command. The command keeps the PID that supervisord started, so supervisord's own signals
reach it as before.

On other systems the command runs without the guard.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "set_parent_death_signal"]

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(signal_number: int = signal.SIGTERM) -> bool:
    """Set the signal that the kernel sends to this process when its parent dies.

    The setting survives ``exec``, so it also covers the program this process becomes.

    Returns:
        True on Linux, False on systems without ``prctl``, where nothing changes.

    Raises:
        OSError: ``prctl`` failed.
    """
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal_number), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}")
    return True


def _parent_gone(parent_pidfile: Path | None) -> str | None:
    """Return why the expected parent is gone, or None if it is alive or unknown.

    A parent that died before ``set_parent_death_signal`` ran sends no signal, so the guard
    compares its parent with the pid that supervisord wrote before it started any process.
    """
    if parent_pidfile is None:
        return None
    try:
        expected = int(parent_pidfile.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    if os.getppid() == expected:
        return None
    return f"the parent process (pid {expected}, from {parent_pidfile}) exited"


def main(argv: Sequence[str] | None = None) -> int:
    """Set the parent-death signal, then exec the command; return an exit code only on failure.

    Returns 2 for invalid arguments, 1 when the parent named by ``--parent-pidfile`` is gone,
    and 127 or 126 when the command is not found or cannot be run, as a shell would.
    """
    parser = argparse.ArgumentParser(
        prog="python -m evidence_gateway.stack.orphan_guard",
        description="Run COMMAND so that it gets a signal when its parent process dies.",
    )
    parser.add_argument(
        "--signal",
        default="TERM",
        choices=("TERM", "INT", "KILL"),
        help="signal sent when the parent dies (default TERM)",
    )
    parser.add_argument(
        "--parent-pidfile",
        type=Path,
        help="file with the pid of the expected parent; if the parent differs, do not start",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="program and its arguments")
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    args: list[str] = options.command
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        parser.print_usage(sys.stderr)
        print("orphan_guard: missing COMMAND", file=sys.stderr)
        return 2
    program = shutil.which(args[0])
    if program is None:
        print(f"orphan_guard: command not found: {args[0]!r}; check PATH", file=sys.stderr)
        return 127
    set_parent_death_signal(signal.Signals[f"SIG{options.signal}"])
    reason = _parent_gone(options.parent_pidfile)
    if reason is not None:
        print(f"orphan_guard: not starting {args[0]!r}: {reason}", file=sys.stderr)
        return 1
    try:
        os.execv(program, args)  # noqa: S606 - the Procfile, which the operator controls, names it
    except OSError as error:
        print(f"orphan_guard: cannot run {program!r}: {error}", file=sys.stderr)
    return 126


if __name__ == "__main__":
    raise SystemExit(main())
