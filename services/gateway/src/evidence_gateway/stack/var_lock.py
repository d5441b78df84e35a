"""An exclusive lock on the stack's runtime folder, so two stacks never share its files.

Two stacks on one folder would overwrite each other's ``supervisord.conf`` and
``supervisord.pid``, write into one ``stack.log`` (where each would read the other's process
starts as its own) and run two workers on one queue. The lock is ``fcntl.flock`` on
``<var>/stack.lock``. The kernel releases it when the last file descriptor of the lock closes,
so also when every holder was killed with SIGKILL, and a stale lock file never blocks a start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_FILE_NAME", "VarDirLock", "VarDirLockedError"]

LOCK_FILE_NAME = "stack.lock"


class VarDirLockedError(RuntimeError):
    """Another process holds the lock of the runtime folder.

    Attributes:
        var_dir: The folder.
        holder_pid: Process id that the holder wrote into the lock file, or ``None`` when the
            file contains none yet.
    """

    def __init__(self, message: str, *, var_dir: Path, holder_pid: int | None) -> None:
        super().__init__(message)
        self.var_dir = var_dir
        self.holder_pid = holder_pid


class VarDirLock:
    """The exclusive lock of one runtime folder, taken by :meth:`acquire`.

    The lock file stays in place after :meth:`release`. Deleting it would let a process that
    opened the old file and a process that creates a new one both hold "the" lock.
    """

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.path = var_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    @property
    def fileno(self) -> int | None:
        """File descriptor of the lock file while the lock is held, else ``None``.

        A child process that inherits it keeps the lock held until the child exits too.
        """
        return self._fd

    def acquire(self) -> None:
        """Take the lock without waiting and write this process's id into the lock file.

        Does nothing when this object already holds the lock. The folder must exist.

        Raises:
            VarDirLockedError: Another process holds the lock.
            OSError: The lock file cannot be created or locked, such as in a read-only folder.
        """
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise _locked_error(self.var_dir, self.path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        # The id is written only once the lock is held, so the holder's id is never cleared by
        # a process that then fails to take the lock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock if this object holds it."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    # Empty while the holder is between taking the lock and writing its id.
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


def _locked_error(var_dir: Path, lock_path: Path, holder: int | None) -> VarDirLockedError:
    process = f"pid {holder}" if holder is not None else "pid unknown"
    msg = (
        f"the runtime folder {str(var_dir)!r} is in use by another evidence-stack "
        f"({process}), which holds the lock {str(lock_path)!r}; stop that stack, or pass "
        "--var-dir with another folder, and ports that stack does not use, to run a second "
        "stack beside it"
    )
    return VarDirLockedError(msg, var_dir=var_dir, holder_pid=holder)
