"""Create output folders and files without following symbolic links inside the output folder."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

__all__ = [
    "SymlinkInOutputError",
    "check_no_symlinks",
    "make_folder",
    "open_new_text_file",
    "write_new_file",
]

# O_EXCL with O_CREAT never follows a link, so a link that appears after the check is an error.
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class SymlinkInOutputError(OSError):
    """Output paths that are symbolic links, which the writers reject instead of following.

    ``paths`` lists every link found, in writing order. ``filename`` is the first of them.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__(errno.ELOOP, "is a symbolic link", str(paths[0]))
        self.paths = tuple(paths)


def check_no_symlinks(paths: Iterable[Path]) -> None:
    """Raise SymlinkInOutputError listing each of ``paths`` that is a symbolic link.

    A link to a missing target counts as well. Paths below a linked folder that comes earlier
    in ``paths`` are skipped, so each link is listed once.
    """
    links: list[Path] = []
    for path in paths:
        if path.is_symlink() and not any(link in path.parents for link in links):
            links.append(path)
    if links:
        raise SymlinkInOutputError(links)


def make_folder(path: Path) -> None:
    """Create the folder ``path`` unless it exists, and reject it when it is a link."""
    # NOTE: a folder swapped for a link after this check is followed by the file writes into
    # it. Closing that race needs descriptor-relative calls (dir_fd), which Windows lacks.
    check_no_symlinks([path])
    path.mkdir(exist_ok=True)


def write_new_file(path: Path, content: bytes) -> None:
    """Write ``content`` to a new file at ``path``, deleting the file that was there first."""
    with os.fdopen(_create_new_file(path), "wb") as handle:
        handle.write(content)


def open_new_text_file(path: Path) -> TextIO:
    """Open a new UTF-8 text file at ``path`` for csv, deleting the file that was there first."""
    return os.fdopen(_create_new_file(path), "w", encoding="utf-8", newline="")


def _create_new_file(path: Path) -> int:
    """Delete ``path`` when it is a file, create it anew and return the open descriptor.

    Deleting first means a hard link to the old file keeps its old bytes, and a link that
    appears after the check makes ``os.open`` raise FileExistsError, so no write reaches
    another file. Readers can see the file missing or half written while the caller writes.
    """
    check_no_symlinks([path])
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return os.open(path, _NEW_FILE_FLAGS, 0o666)
