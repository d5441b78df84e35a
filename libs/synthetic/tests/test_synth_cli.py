"""The `evidence-synth` command writes pairs, labels and samples."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import evidence_synthetic.cli as cli_module
import pytest
from evidence_synthetic import generate_pairs
from evidence_synthetic.cli import app
from lxml import etree
from typer.testing import CliRunner, Result


def test_cli_writes_pairs_and_labels(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--n", "12", "--seed", "7", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wrote 12 pairs" in result.output
    with (tmp_path / "labels.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["policy_number", "label", "as_of"]
    assert len(rows) == 13
    expected = generate_pairs(12, seed=7)
    for row, pair in zip(rows[1:], expected, strict=True):
        assert row == [pair.policy_number, str(pair.label), pair.as_of.isoformat()]
        assert (tmp_path / row[0] / "mib.xml").read_bytes() == pair.mib_xml
        assert (tmp_path / row[0] / "rx.xml").read_bytes() == pair.rx_xml


def test_cli_fixed_as_of_applies_to_all(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--n", "5", "--out", str(tmp_path), "--as-of", "2024-03-16", "--edge-rate", "0"]
    )
    assert result.exit_code == 0, result.output
    with (tmp_path / "labels.csv").open(encoding="utf-8") as handle:
        assert {row["as_of"] for row in csv.DictReader(handle)} == {"2024-03-16"}


def test_cli_invalid_as_of_rejected(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--n", "1", "--out", str(tmp_path), "--as-of", "16/03/2024"])
    assert result.exit_code == 2
    assert "invalid date '16/03/2024'" in result.output


def test_cli_edge_rate_out_of_range_rejected(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--n", "1", "--out", str(tmp_path), "--edge-rate", "2"])
    assert result.exit_code == 2


def test_cli_samples_flag_writes_samples(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--samples", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "README.md").is_file()
    assert (tmp_path / "smoke" / "empty.xml").read_bytes() == b"<r/>"
    etree.fromstring((tmp_path / "04-opioid-benzo" / "rx.xml").read_bytes())


def test_cli_entry_point_runs(tmp_path: Path) -> None:
    executable = shutil.which("evidence-synth") or str(
        Path(__file__).resolve().parents[3] / ".venv" / "bin" / "evidence-synth"
    )
    completed = subprocess.run(
        [executable, "--n", "3", "--seed", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(list(tmp_path.glob("SYN-1-*/rx.xml"))) == 3


def invoke(*args: str) -> Result:
    """Run evidence-synth in-process with a wide terminal, so messages are not wrapped."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def folder_names(root: Path) -> list[str]:
    """Return the sorted names of the entries directly under ``root``."""
    return sorted(entry.name for entry in root.iterdir())


def policy_names(root: Path) -> list[str]:
    """Return the policy numbers listed in ``root``/labels.csv, in file order."""
    with (root / "labels.csv").open(encoding="utf-8") as handle:
        return [row["policy_number"] for row in csv.DictReader(handle)]


def test_cli_out_is_file_rejected(tmp_path: Path) -> None:
    """An --out that is a file gives exit 2 and one line naming it, for pairs and samples."""
    target = tmp_path / "labels.txt"
    target.write_text("keep", encoding="utf-8")

    for args in (["--n", "2"], ["--samples"]):
        result = invoke(*args, "--out", str(target))

        assert result.exit_code == 2, result.output
        assert result.output.splitlines() == [
            f"error: --out {str(target)!r} is a file, not a folder; choose a folder path"
        ]
        assert target.read_text(encoding="utf-8") == "keep"


def test_cli_out_under_file_rejected(tmp_path: Path) -> None:
    """An --out below a file cannot be created: exit 2, the path and the reason."""
    (tmp_path / "afile").write_text("", encoding="utf-8")
    target = tmp_path / "afile" / "pairs"

    result = invoke("--n", "2", "--out", str(target))

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: cannot create --out {str(target)!r}: Not a directory; "
        "choose a writable folder path"
    ]


def test_cli_write_failure_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError while writing gives exit 2 and one line naming the file, not a traceback."""

    def fail_to_write(pairs: object, directory: Path) -> int:
        raise PermissionError(13, "Permission denied", str(directory / "labels.csv"))

    monkeypatch.setattr(cli_module, "write_pairs", fail_to_write)

    result = invoke("--n", "2", "--out", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: cannot write {str(tmp_path / 'out' / 'labels.csv')!r}: Permission denied; "
        "choose a writable --out folder"
    ]


def test_cli_new_and_empty_out_accepted(tmp_path: Path) -> None:
    """A missing folder is created and an existing empty one is used, even for 0 pairs."""
    empty = tmp_path / "empty"
    empty.mkdir()

    created = invoke("--n", "1", "--seed", "4", "--out", str(tmp_path / "new" / "pairs"))
    reused = invoke("--n", "0", "--out", str(empty))

    assert created.exit_code == 0, created.output
    assert folder_names(tmp_path / "new" / "pairs") == ["SYN-4-00000000", "labels.csv"]
    assert reused.exit_code == 0, reused.output
    assert folder_names(empty) == ["labels.csv"]
    assert policy_names(empty) == []


def test_cli_non_empty_out_rejected(tmp_path: Path) -> None:
    """Pairs over an earlier run stop with exit 2 and leave every old file in place."""
    assert invoke("--n", "60", "--seed", "3", "--out", str(tmp_path)).exit_code == 0
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    result = invoke("--n", "5", "--seed", "9", "--out", str(tmp_path))

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: --out {str(tmp_path)!r} is not empty (61 entries); old policy folders would "
        "stay beside the new labels.csv. Choose an empty or new folder, or pass --force to "
        "delete the labels.csv and pair folders written there before"
    ]
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert after == before


def test_cli_one_stray_file_rejected(tmp_path: Path) -> None:
    """A single unrelated file makes the folder non-empty, in the singular."""
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")

    result = invoke("--n", "1", "--out", str(tmp_path))

    assert result.exit_code == 2
    assert f"--out {str(tmp_path)!r} is not empty (1 entry)" in result.output


def test_cli_force_replaces_previous_pairs(tmp_path: Path) -> None:
    """--force deletes the 60 old pair folders and labels.csv, so only the 5 new pairs remain."""
    assert invoke("--n", "60", "--seed", "3", "--out", str(tmp_path)).exit_code == 0
    # A folder an interrupted run left with only mib.xml is also the command's own.
    (tmp_path / "SYN-3-00000000" / "rx.xml").unlink()

    result = invoke("--n", "5", "--seed", "9", "--out", str(tmp_path), "--force")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"deleted 61 entries left in {tmp_path} by an earlier run"
    )
    expected = [pair.policy_number for pair in generate_pairs(5, seed=9)]
    assert policy_names(tmp_path) == expected
    assert folder_names(tmp_path) == sorted([*expected, "labels.csv"])


def test_cli_force_keeps_foreign_entries(tmp_path: Path) -> None:
    """--force deletes nothing when the folder contains anything the command does not write."""
    assert invoke("--n", "4", "--seed", "3", "--out", str(tmp_path)).exit_code == 0
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    (tmp_path / "SYN-3-00000001" / "review.txt").write_text("mine", encoding="utf-8")
    (tmp_path / "model").mkdir()
    before = folder_names(tmp_path)

    result = invoke("--n", "2", "--out", str(tmp_path), "--force")

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: --out {str(tmp_path)!r} contains 3 entries that evidence-synth does not write "
        "(first: 'SYN-3-00000001', 'model', 'notes.txt'); --force deletes only a labels.csv "
        "that starts with the header policy_number,label,as_of and SYN-<seed>-<index> folders "
        "that contain only mib.xml and rx.xml, so move those entries or choose another --out"
    ]
    assert folder_names(tmp_path) == before
    assert policy_names(tmp_path) == [pair.policy_number for pair in generate_pairs(4, seed=3)]


def test_cli_force_skips_symlinks(tmp_path: Path) -> None:
    """A symbolic link to a pair folder counts as foreign, so its target is never deleted."""
    outside = tmp_path / "outside"
    assert invoke("--n", "1", "--seed", "3", "--out", str(outside)).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "linked").symlink_to(outside / "SYN-3-00000000", target_is_directory=True)

    result = invoke("--n", "1", "--out", str(out), "--force")

    assert result.exit_code == 2
    assert "(first: 'linked')" in result.output
    assert (outside / "SYN-3-00000000" / "mib.xml").is_file()


def test_cli_samples_overwrite_in_place(tmp_path: Path) -> None:
    """--samples writes into a non-empty folder without --force and keeps other files."""
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    assert invoke("--samples", "--out", str(tmp_path)).exit_code == 0
    readme = (tmp_path / "README.md").read_bytes()

    result = invoke("--samples", "--out", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert (tmp_path / "README.md").read_bytes() == readme
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"
