"""Documents that fail to parse are counted, reported, and stop training above a threshold.

The training directories are written by ``evidence_synthetic.write_pairs``. Some documents are
then replaced by text that is not XML, or by a well-formed document larger than the
2,000,000-byte ``ParseLimits`` cap, and the counts are checked against those replacements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES
from evidence_synthetic import generate_pairs, write_pairs
from evidence_training.cli import app
from evidence_training.dataset import (
    ParseErrorCounts,
    TrainingSet,
    check_parse_errors,
    load_directory_set,
)
from evidence_training.errors import DatasetError
from typer.testing import CliRunner

runner = CliRunner(env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})

# Text that must never appear in the command's output, although every failed document contains it.
DOCUMENT_CANARY = "CANARY-DOCUMENT-TEXT-OXYCODONE"
OVERSIZED_BYTES = 2_100_000


def write_set(root: Path, count: int, seed: int = 3) -> list[str]:
    """Write ``count`` synthetic pairs under ``root`` and return their policy numbers in order."""
    pairs = generate_pairs(count, seed=seed)
    write_pairs(pairs, root)
    return [pair.policy_number for pair in pairs]


def break_document(root: Path, policy: str, name: str) -> None:
    """Replace one document with text that is not XML and quotes the canary."""
    (root / policy / name).write_text(f"garbage {DOCUMENT_CANARY}", encoding="utf-8")


def oversize_document(root: Path, policy: str, name: str) -> None:
    """Replace one document with well-formed XML larger than the 2,000,000-byte cap."""
    padding = "x" * OVERSIZED_BYTES
    text = f"<MIBResponse><Note>{DOCUMENT_CANARY}{padding}</Note></MIBResponse>"
    (root / policy / name).write_text(text, encoding="utf-8")


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    """Return evidence-train arguments for a quick run on ``data``."""
    return ["--data", str(data), "--out", str(out), "--jobs", "1", "--no-progress", *extra]


def test_parse_errors_none(tmp_path: Path) -> None:
    """Intact synthetic documents give zero counts for every kind."""
    write_set(tmp_path, 10)

    counts = load_directory_set(tmp_path, progress=False).parse_errors

    assert counts == ParseErrorCounts(mib=0, rx=0, pairs=0, total_pairs=10)
    assert counts.pair_fraction == 0.0


def test_parse_errors_one_document(tmp_path: Path) -> None:
    """One broken Rx document counts once for Rx and once for pairs."""
    policies = write_set(tmp_path, 10)
    break_document(tmp_path, policies[4], "rx.xml")

    training_set = load_directory_set(tmp_path, progress=False)

    assert training_set.parse_errors == ParseErrorCounts(mib=0, rx=1, pairs=1, total_pairs=10)
    assert training_set.parse_errors.pair_fraction == pytest.approx(0.1)
    assert training_set.policies_with_parse_errors(3) == [policies[4]]


def test_parse_errors_many_documents(tmp_path: Path) -> None:
    """Broken, oversized and missing documents: only the first two kinds count."""
    policies = write_set(tmp_path, 12)
    break_document(tmp_path, policies[0], "mib.xml")
    break_document(tmp_path, policies[0], "rx.xml")
    break_document(tmp_path, policies[3], "mib.xml")
    oversize_document(tmp_path, policies[5], "mib.xml")
    break_document(tmp_path, policies[7], "rx.xml")
    # A missing document means "no report", which is not a parse error.
    (tmp_path / policies[9] / "rx.xml").unlink()

    training_set = load_directory_set(tmp_path, progress=False)

    assert training_set.parse_errors == ParseErrorCounts(mib=3, rx=2, pairs=4, total_pairs=12)
    assert training_set.policies_with_parse_errors(3) == [policies[0], policies[3], policies[5]]
    assert training_set.policies_with_parse_errors(10) == [
        policies[0],
        policies[3],
        policies[5],
        policies[7],
    ]
    assert training_set.parse_errors.to_json() == {
        "mib_parse_errors": 3,
        "rx_parse_errors": 2,
        "pairs_with_parse_errors": 4,
        "pairs": 12,
    }


def test_check_parse_errors_threshold(tmp_path: Path) -> None:
    """Exactly the maximum share passes, and one more failed pair raises."""
    policies = write_set(tmp_path, 10)
    for policy in policies[:5]:
        break_document(tmp_path, policy, "mib.xml")
    half = load_directory_set(tmp_path, progress=False)
    break_document(tmp_path, policies[5], "rx.xml")
    over_half = load_directory_set(tmp_path, progress=False)

    assert check_parse_errors(half, 0.5).pairs == 5
    with pytest.raises(DatasetError, match=r"6 of 10 pairs \(60\.0%\)") as caught:
        check_parse_errors(over_half, 0.5)
    message = str(caught.value)
    assert "MIB: 5, Rx: 1" in message
    assert f"'{policies[0]}', '{policies[1]}', '{policies[2]}'" in message
    assert policies[3] not in message
    assert "--max-parse-error-fraction" in message
    assert DOCUMENT_CANARY not in message


def test_check_parse_errors_bounds(tmp_path: Path) -> None:
    """0 rejects any failed pair, 1 accepts all, and a value outside [0, 1] is invalid."""
    policies = write_set(tmp_path, 4)
    clean = load_directory_set(tmp_path, progress=False)
    for policy in policies:
        break_document(tmp_path, policy, "rx.xml")
    broken = load_directory_set(tmp_path, progress=False)

    assert check_parse_errors(clean, 0.0).pairs == 0
    assert check_parse_errors(broken, 1.0).pairs == 4
    with pytest.raises(DatasetError, match=r"4 of 4 pairs \(100\.0%\)"):
        check_parse_errors(broken, 0.0)
    for invalid in (-0.1, 1.5):
        with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
            check_parse_errors(clean, invalid)


def test_parse_errors_empty_set() -> None:
    """An empty set has no failed pairs and a fraction of 0."""
    empty = TrainingSet(
        matrix=np.empty((0, len(FEATURE_NAMES))),
        labels=np.empty((0,), dtype=np.int64),
        policy_numbers=(),
        source="empty",
    )

    assert empty.parse_errors == ParseErrorCounts(mib=0, rx=0, pairs=0, total_pairs=0)
    assert empty.parse_errors.pair_fraction == 0.0
    assert check_parse_errors(empty, 0.0).pairs == 0


def test_cli_all_documents_garbage_exits_2(tmp_path: Path) -> None:
    """Every document broken: exit 2 before training, counts named, no document text printed."""
    data, out = tmp_path / "data", tmp_path / "model"
    for policy in write_set(data, 60):
        break_document(data, policy, "mib.xml")
        break_document(data, policy, "rx.xml")

    result = runner.invoke(app, train_args(data, out))

    assert result.exit_code == 2, result.output
    assert "60 of 60 pairs (100.0%)" in result.output
    assert "MIB: 60, Rx: 60" in result.output
    assert "--max-parse-error-fraction" in result.output
    assert DOCUMENT_CANARY not in result.output
    assert not out.exists()


def test_cli_parse_error_names_directory(tmp_path: Path) -> None:
    """The message names the training data directory as the quoted path given to --data."""
    data, out = tmp_path / "evidence set", tmp_path / "model"
    for policy in write_set(data, 20):
        break_document(data, policy, "mib.xml")

    result = runner.invoke(app, train_args(data, out))

    assert result.exit_code == 2, result.output
    assert f"20 of 20 pairs (100.0%) in directory '{data}' have a document" in result.output
    assert "directory(" not in result.output


def test_cli_oversized_documents_exit_2(tmp_path: Path) -> None:
    """Documents over the byte cap count as failed, the same as text that is not XML."""
    data, out = tmp_path / "data", tmp_path / "model"
    policies = write_set(data, 30)
    for policy in policies[:16]:
        oversize_document(data, policy, "mib.xml")

    result = runner.invoke(app, train_args(data, out))

    assert result.exit_code == 2, result.output
    assert "16 of 30 pairs (53.3%)" in result.output
    assert "MIB: 16, Rx: 0" in result.output
    assert "2,000,000 bytes" in result.output
    assert DOCUMENT_CANARY not in result.output


def test_cli_reports_counts_below_threshold(tmp_path: Path) -> None:
    """A few broken documents train, and stdout and report.json carry the counts."""
    data, out = tmp_path / "data", tmp_path / "model"
    policies = write_set(data, 80)
    break_document(data, policies[1], "mib.xml")
    break_document(data, policies[2], "rx.xml")
    break_document(data, policies[2], "mib.xml")

    # gbm, because 64 training rows are too few for a split of the default hist-gbm model.
    result = runner.invoke(app, train_args(data, out, "--model", "gbm"))

    assert result.exit_code == 0, result.output
    assert "failed to parse (their features are the defaults): MIB 2, Rx 1, in 2 of 80 pairs" in (
        result.output
    )
    assert DOCUMENT_CANARY not in result.output
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))["training_summary"]
    assert summary["mib_parse_errors"] == 2
    assert summary["rx_parse_errors"] == 1
    assert summary["pairs_with_parse_errors"] == 2
    assert summary["pairs"] == 80


def test_cli_option_allows_all_failed(tmp_path: Path) -> None:
    """--max-parse-error-fraction 1 trains even when every pair has a failed document."""
    data, out = tmp_path / "data", tmp_path / "model"
    for policy in write_set(data, 60):
        break_document(data, policy, "rx.xml")

    result = runner.invoke(
        app, train_args(data, out, "--max-parse-error-fraction", "1", "--model", "gbm")
    )

    assert result.exit_code == 0, result.output
    assert "MIB 0, Rx 60, in 60 of 60 pairs" in result.output
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))["training_summary"]
    assert summary["rx_parse_errors"] == 60


def test_cli_option_out_of_range_exits_2(tmp_path: Path) -> None:
    """A fraction above 1 is a usage error before any data is read."""
    result = runner.invoke(
        app, train_args(tmp_path, tmp_path / "model", "--max-parse-error-fraction", "1.5")
    )

    assert result.exit_code == 2
    assert "Invalid value for '--max-parse-error-fraction'" in result.output
    assert "less than or equal to 1" in result.output


def test_labels_with_byte_order_mark_load(tmp_path: Path) -> None:
    """A labels.csv that starts with a UTF-8 byte-order mark loads like one without it."""
    policies = write_set(tmp_path, 6)
    labels = tmp_path / "labels.csv"
    labels.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes())

    training_set = load_directory_set(tmp_path, progress=False)

    assert training_set.policy_numbers == tuple(policies)
    assert training_set.matrix.shape[0] == 6


def test_script_sparse_huge_document_fails_parse(tmp_path: Path) -> None:
    """A 3 GB sparse rx.xml counts as a parse failure in a process limited to 1.5 GB of memory.

    Reading the file whole would raise MemoryError under that limit. The command must read only
    the cap plus one byte.
    """
    data, out = tmp_path / "data", tmp_path / "model"
    policies = write_set(data, 20)
    # Sparse: the file takes almost no disk space.
    os.truncate(data / policies[0] / "rx.xml", 3 * 1024**3)
    arguments = [*train_args(data, out), "--max-parse-error-fraction", "0"]
    # The limit applies to the address space of the command's process only, not to pytest.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))\n"
        "from evidence_training.cli import main\n"
        f"sys.argv = ['evidence-train', *{arguments!r}]\n"
        "main()\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False
    )

    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert "1 of 20 pairs (5.0%)" in completed.stderr
    assert "MIB: 0, Rx: 1" in completed.stderr
    assert repr(policies[0]) in completed.stderr
    assert "2,000,000 bytes" in completed.stderr


@pytest.mark.timeout(60)
def test_cli_fifo_document_exits_2(tmp_path: Path) -> None:
    """A FIFO as rx.xml stops the run with one message naming it, without waiting for a writer."""
    data, out = tmp_path / "data", tmp_path / "model"
    policies = write_set(data, 20)
    fifo = data / policies[2] / "rx.xml"
    fifo.unlink()
    os.mkfifo(fifo)

    result = runner.invoke(app, train_args(data, out))

    assert result.exit_code == 2, result.output
    assert f"error: {str(fifo)!r} is a FIFO (named pipe), not a regular file" in result.output
    assert "replace it with a regular file or remove it" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


@pytest.mark.timeout(60)
def test_cli_symlink_to_dev_zero_exits_2(tmp_path: Path) -> None:
    """A symbolic link to /dev/zero as mib.xml is rejected as a device instead of being read."""
    data, out = tmp_path / "data", tmp_path / "model"
    policies = write_set(data, 20)
    link = data / policies[1] / "mib.xml"
    link.unlink()
    link.symlink_to("/dev/zero")

    result = runner.invoke(app, train_args(data, out))

    assert result.exit_code == 2, result.output
    assert (
        f"error: {str(link)!r} is a character device (through a symbolic link), "
        "not a regular file" in result.output
    )
    assert "Traceback" not in result.output
    assert not out.exists()


def test_cli_directory_document_exits_2(tmp_path: Path) -> None:
    """A directory named mib.xml is rejected like a FIFO, also when rx.xml is missing."""
    data, out = tmp_path / "data", tmp_path / "model"
    policies = write_set(data, 20)
    folder = data / policies[3]
    (folder / "mib.xml").unlink()
    (folder / "mib.xml").mkdir()
    (folder / "rx.xml").unlink()

    result = runner.invoke(app, train_args(data, out))

    assert result.exit_code == 2, result.output
    assert f"error: {str(folder / 'mib.xml')!r} is a directory, not a regular file" in (
        result.output
    )


@pytest.mark.timeout(60)
def test_load_directory_set_fifo_labels_raises(tmp_path: Path) -> None:
    """A FIFO as labels.csv raises DatasetError instead of waiting for a writer."""
    write_set(tmp_path, 4)
    labels = tmp_path / "labels.csv"
    labels.unlink()
    os.mkfifo(labels)

    with pytest.raises(DatasetError, match=r"labels\.csv' is a FIFO \(named pipe\)"):
        load_directory_set(tmp_path, progress=False)
