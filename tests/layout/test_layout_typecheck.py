"""The Makefile's typecheck-tests list covers every folder that contains tests.

mypy only checks the folders listed in TYPECHECK_TEST_DIRS, so a new test folder left out of the
list would never be type-checked, and nothing else would notice.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_LIST = re.compile(r"^TYPECHECK_TEST_DIRS :=((?:.*\\\n)*.*)$", re.MULTILINE)


def listed_folders() -> list[Path]:
    """Return the folders of TYPECHECK_TEST_DIRS, without their MYPYPATH part."""
    match = _LIST.search((REPO_ROOT / "Makefile").read_text(encoding="utf-8"))
    assert match is not None, "the Makefile defines no TYPECHECK_TEST_DIRS"
    entries = match.group(1).replace("\\\n", " ").split()
    return [REPO_ROOT / entry.split(":", 1)[0] for entry in entries]


def python_test_folders() -> set[Path]:
    """Return every folder under pytest's testpaths and benchmarks/ that contains a .py file."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    roots = [*config["tool"]["pytest"]["ini_options"]["testpaths"], "benchmarks"]
    folders = set()
    for root in roots:
        for path in (REPO_ROOT / root).rglob("*.py"):
            if "__pycache__" not in path.parts:
                folders.add(path.parent)
    return folders


def unchecked_folders(folders: set[Path], listed: list[Path]) -> list[str]:
    """Return the folders, relative to the repository, that lie under no listed folder."""
    return sorted(
        str(folder.relative_to(REPO_ROOT))
        for folder in folders
        if not any(folder == root or root in folder.parents for root in listed)
    )


def test_listed_folders_exist() -> None:
    listed = listed_folders()
    assert len(listed) > 1
    missing = [str(folder.relative_to(REPO_ROOT)) for folder in listed if not folder.is_dir()]
    assert missing == []


def test_every_test_folder_listed() -> None:
    folders = python_test_folders()
    assert REPO_ROOT / "tests" / "layout" in folders
    unchecked = unchecked_folders(folders, listed_folders())
    assert unchecked == [], "add these folders to TYPECHECK_TEST_DIRS in the Makefile"


def test_unchecked_folders_cases() -> None:
    listed = [REPO_ROOT / "tests" / "cli", REPO_ROOT / "benchmarks"]
    folders = {
        REPO_ROOT / "tests" / "cli",
        REPO_ROOT / "benchmarks" / "stack",
        REPO_ROOT / "tests" / "clip",
        REPO_ROOT / "tests",
    }
    assert unchecked_folders(folders, listed) == ["tests", "tests/clip"]
    assert unchecked_folders(set(), listed) == []
    assert unchecked_folders(folders, []) == sorted(
        str(folder.relative_to(REPO_ROOT)) for folder in folders
    )
