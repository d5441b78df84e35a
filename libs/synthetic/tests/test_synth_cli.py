"""The `evidence-synth` command writes pairs, labels and samples."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

from evidence_synthetic import generate_pairs
from evidence_synthetic.cli import app
from lxml import etree
from typer.testing import CliRunner


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
