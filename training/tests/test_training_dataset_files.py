"""Tests of reading a labelled training directory (labels.csv and per-policy XML files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_training.dataset import load_directory_set
from evidence_training.errors import DatasetError


def _write_dir(root: Path, labels: str, policies: dict[str, dict[str, str]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text(labels, encoding="utf-8")
    for policy, files in policies.items():
        (root / policy).mkdir()
        for name, text in files.items():
            (root / policy / name).write_text(text, encoding="utf-8")
    return root


_MIB = "<MIBResponse/>"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("policy,label,as_of\nP1,1,2024-01-01\n", r"lacks columns \['policy_number'\]"),
        ("policy_number,label,as_of\n", "no rows"),
        (
            "policy_number,label,as_of\nP1,2,2024-01-01\n",
            "label '2' for policy 'P1' must be 0 or 1",
        ),
        ("policy_number,label,as_of\nP1,1,01/02/2024\n", "line 2: as_of '01/02/2024'"),
        # ISO 8601 forms that date.fromisoformat of Python 3.11 accepts, but not YYYY-MM-DD.
        ("policy_number,label,as_of\nP1,1,2024-W01-1\n", "line 2: as_of '2024-W01-1'"),
        ("policy_number,label,as_of\nP1,1,20240101\n", "line 2: as_of '20240101'"),
        ("policy_number,label,as_of\nP1,1,2024-02-30\n", "line 2: as_of '2024-02-30'"),
        ("policy_number,label,as_of\nP1,1,2024-01-01\nP1,0,2024-01-01\n", "line 3.*twice"),
        ("policy_number,label,as_of\n../x,1,2024-01-01\n", "not a plain folder name"),
        ("policy_number,label,as_of\n,1,2024-01-01\n", "not a plain folder name"),
    ],
)
def test_load_directory_set_bad_labels_raise(tmp_path: Path, labels: str, message: str) -> None:
    """Each kind of invalid labels.csv raises DatasetError naming the line or column."""
    root = _write_dir(tmp_path / "data", labels, {"P1": {"mib.xml": _MIB}})

    with pytest.raises(DatasetError, match=message):
        load_directory_set(root, progress=False)


def test_load_directory_set_missing_directory_raises(tmp_path: Path) -> None:
    """A directory that does not exist raises DatasetError naming it."""
    with pytest.raises(DatasetError, match="does not exist"):
        load_directory_set(tmp_path / "absent", progress=False)


def test_load_directory_set_missing_labels_raises(tmp_path: Path) -> None:
    """A directory without labels.csv raises DatasetError naming the expected columns."""
    (tmp_path / "data").mkdir()

    with pytest.raises(DatasetError, match=r"labels file .* is missing"):
        load_directory_set(tmp_path / "data", progress=False)


def test_load_directory_set_policy_without_files_raises(tmp_path: Path) -> None:
    """A labelled policy with neither mib.xml nor rx.xml raises DatasetError naming it."""
    labels = "policy_number,label,as_of\nP1,1,2024-01-01\nP2,0,2024-01-01\n"
    root = _write_dir(tmp_path / "data", labels, {"P1": {"mib.xml": _MIB}, "P2": {}})

    with pytest.raises(DatasetError, match=r"policy .P2. .* has neither mib.xml nor rx.xml"):
        load_directory_set(root, progress=False)


def test_load_directory_set_accepts_plain_date(tmp_path: Path) -> None:
    """A YYYY-MM-DD as_of loads as that date."""
    labels = "policy_number,label,as_of\nP1,1,2024-02-29\n"
    root = _write_dir(tmp_path / "data", labels, {"P1": {"mib.xml": _MIB}})

    training_set = load_directory_set(root, progress=False)

    assert training_set.policy_numbers == ("P1",)


def test_invalid_date_message_names_form(tmp_path: Path) -> None:
    """The as_of message names the expected form and an example."""
    labels = "policy_number,label,as_of\nP1,1,2024-W01-1\n"
    root = _write_dir(tmp_path / "data", labels, {"P1": {"mib.xml": _MIB}})

    with pytest.raises(DatasetError) as raised:
        load_directory_set(root, progress=False)

    assert "is not a valid date in the form YYYY-MM-DD" in str(raised.value)
    assert "2024-01-31" in str(raised.value)


def test_labels_line_after_blank_lines(tmp_path: Path) -> None:
    """Blank lines count, so the error names the physical line of the bad row."""
    labels = "policy_number,label,as_of\nA,1,2024-01-01\n\n\nB,1,2024-13-01\n"
    root = _write_dir(tmp_path / "data", labels, {"A": {"mib.xml": _MIB}, "B": {"mib.xml": _MIB}})

    with pytest.raises(DatasetError, match=r"^labels\.csv line 5: as_of '2024-13-01'"):
        load_directory_set(root, progress=False)


def test_labels_duplicate_after_blank_line(tmp_path: Path) -> None:
    """A duplicate policy after a blank line is reported on its own physical line."""
    labels = "policy_number,label,as_of\nA,1,2024-01-01\n\nA,0,2024-01-01\n"
    root = _write_dir(tmp_path / "data", labels, {"A": {"mib.xml": _MIB}})

    with pytest.raises(DatasetError, match=r"^labels\.csv line 4: policy 'A' appears twice"):
        load_directory_set(root, progress=False)


def test_labels_quoted_newline_kept(tmp_path: Path) -> None:
    """A quoted field with a newline stays one field, and later lines keep their numbers."""
    labels = (
        "policy_number,label,as_of,note\n"
        'A,1,2024-01-01,"first line\nsecond line"\n'
        "B,0,2024-01-02,plain\n"
        "C,1,2024-13-01,plain\n"
    )
    policies = {name: {"mib.xml": _MIB} for name in ("A", "B", "C")}
    root = _write_dir(tmp_path / "data", labels, policies)

    with pytest.raises(DatasetError, match=r"^labels\.csv line 5: as_of '2024-13-01'"):
        load_directory_set(root, progress=False)

    (root / "labels.csv").write_text(labels.replace("2024-13-01", "2024-01-03"), encoding="utf-8")
    training_set = load_directory_set(root, progress=False)

    assert training_set.policy_numbers == ("A", "B", "C")
    assert training_set.labels.tolist() == [1, 0, 1]


def test_labels_error_in_multiline_record(tmp_path: Path) -> None:
    """An error in a record that spans lines names its first and last line."""
    labels = 'policy_number,label,as_of\nA,1,"2024-\n01-01"\n'
    root = _write_dir(tmp_path / "data", labels, {"A": {"mib.xml": _MIB}})

    with pytest.raises(DatasetError, match=r"^labels\.csv lines 2-3: as_of"):
        load_directory_set(root, progress=False)
