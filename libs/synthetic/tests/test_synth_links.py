"""The writers never follow symbolic links, and --force deletes only what evidence-synth wrote."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import evidence_synthetic.cli as cli_module
import pytest
from evidence_synthetic import generate_pairs, write_pairs, write_samples
from evidence_synthetic.cli import app
from typer.testing import CliRunner, Result

VICTIM_TEXT = "precious"


def invoke(*args: str) -> Result:
    """Run evidence-synth in-process with a wide terminal, so messages are not wrapped."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def make_victim(tmp_path: Path) -> Path:
    """Create the file outside --out that a link points to."""
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM_TEXT, encoding="utf-8")
    return victim


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Map every entry under ``root`` to its bytes, its link target or "dir"."""
    result: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            result[relative] = f"link to {path.readlink()}"
        elif path.is_dir():
            result[relative] = "dir"
        else:
            result[relative] = path.read_bytes()
    return result


@pytest.fixture
def samples_out(tmp_path: Path) -> Path:
    """A nested folder that already contains the sample layout from an earlier --samples run."""
    out = tmp_path / "nested" / "samples"
    assert invoke("--samples", "--out", str(out)).exit_code == 0
    return out


@pytest.mark.parametrize(
    "link",
    ["README.md", "01-clean/mib.xml", "smoke/empty.xml", "06-try-only/rx.xml"],
)
def test_samples_file_link_rejected(tmp_path: Path, samples_out: Path, link: str) -> None:
    """A file link in the sample layout stops the run before any file is written."""
    victim = make_victim(tmp_path)
    (samples_out / link).unlink()
    (samples_out / link).symlink_to(victim)
    before = snapshot(samples_out)

    result = invoke("--samples", "--out", str(samples_out))

    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"error: --out {str(samples_out)!r} contains 1 symbolic link where evidence-synth "
        f"writes (first: {link!r}); it never writes through links, so replace the link "
        "with a regular file or folder, or choose another --out"
    ]
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT
    assert snapshot(samples_out) == before


def test_samples_dangling_link_rejected(tmp_path: Path, samples_out: Path) -> None:
    """A link to a missing file is rejected too, so the command never creates its target."""
    (samples_out / "README.md").unlink()
    (samples_out / "README.md").symlink_to(tmp_path / "missing.txt")

    result = invoke("--samples", "--out", str(samples_out))

    assert result.exit_code == 2
    assert "(first: 'README.md')" in result.output
    assert not (tmp_path / "missing.txt").exists()


@pytest.mark.parametrize("folder", ["01-clean", "smoke"])
def test_samples_folder_link_rejected(tmp_path: Path, samples_out: Path, folder: str) -> None:
    """A sample folder that is a link to another folder leaves that folder unchanged."""
    elsewhere = tmp_path / "elsewhere"
    (samples_out / folder).rename(elsewhere)
    (samples_out / folder).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    for child in elsewhere.iterdir():
        child.write_bytes(b"mine")
    mine = snapshot(elsewhere)
    assert mine != before

    result = invoke("--samples", "--out", str(samples_out))

    assert result.exit_code == 2
    assert f"contains 1 symbolic link where evidence-synth writes (first: {folder!r})" in (
        result.output
    )
    assert snapshot(elsewhere) == mine


def test_samples_many_links_listed(tmp_path: Path, samples_out: Path) -> None:
    """Five links are counted and the first three are named, in writing order."""
    victim = make_victim(tmp_path)
    links = ["01-clean/mib.xml", "01-clean/rx.xml", "03-cardiac/rx.xml", "smoke/empty.xml"]
    for link in links:
        (samples_out / link).unlink()
        (samples_out / link).symlink_to(victim)
    (samples_out / "02-diabetic").rename(tmp_path / "elsewhere")
    (samples_out / "02-diabetic").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    result = invoke("--samples", "--out", str(samples_out))

    assert result.exit_code == 2
    assert (
        "contains 5 symbolic links where evidence-synth writes (first: '01-clean/mib.xml', "
        "'01-clean/rx.xml', '02-diabetic')"
    ) in result.output
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


def test_samples_no_links_rewritten(samples_out: Path) -> None:
    """Without links the layout is rewritten in place, and a hard-linked copy keeps its bytes."""
    before = snapshot(samples_out)
    outside = samples_out.parent / "readme-copy.md"
    outside.hardlink_to(samples_out / "README.md")
    (samples_out / "README.md").write_text("stale", encoding="utf-8")

    result = invoke("--samples", "--out", str(samples_out))

    assert result.exit_code == 0, result.output
    assert snapshot(samples_out) == before
    assert outside.read_text(encoding="utf-8") == "stale"


def test_samples_out_may_be_link(tmp_path: Path) -> None:
    """--out itself may be a link, because the caller chose that path."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)

    result = invoke("--samples", "--out", str(tmp_path / "alias"))

    assert result.exit_code == 0, result.output
    assert (real / "README.md").is_file()


def test_write_samples_link_raises(tmp_path: Path) -> None:
    """The Python API raises an OSError that lists every link, and writes nothing."""
    victim = make_victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").symlink_to(victim)

    with pytest.raises(OSError, match="symbolic link") as caught:
        write_samples(out)

    assert getattr(caught.value, "paths", None) == (out / "README.md",)
    assert sorted(path.name for path in out.iterdir()) == ["README.md"]
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


def test_write_pairs_labels_link_raises(tmp_path: Path) -> None:
    """write_pairs rejects a labels.csv link instead of overwriting its target."""
    victim = make_victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.csv").symlink_to(victim)

    with pytest.raises(OSError, match="symbolic link"):
        write_pairs(generate_pairs(2, seed=1), out)

    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


@pytest.mark.parametrize("link", ["SYN-1-00000001/mib.xml", "SYN-1-00000000/rx.xml"])
def test_write_pairs_file_link_raises(tmp_path: Path, link: str) -> None:
    """write_pairs rejects a link in place of a pair file, even in the second pair."""
    victim = make_victim(tmp_path)
    out = tmp_path / "out"
    (out / link).parent.mkdir(parents=True)
    (out / link).symlink_to(victim)

    with pytest.raises(OSError, match="symbolic link"):
        write_pairs(generate_pairs(3, seed=1), out)

    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


def test_write_pairs_folder_link_raises(tmp_path: Path) -> None:
    """write_pairs rejects a pair folder that is a link to another folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "SYN-1-00000000").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(OSError, match="symbolic link"):
        write_pairs(generate_pairs(1, seed=1), out)

    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", ["", ".", "..", "../escape", "a/b"])
def test_write_pairs_bad_policy_raises(tmp_path: Path, name: str) -> None:
    """A policy number that is not one plain folder name cannot place files outside the folder."""
    pair = replace(generate_pairs(1, seed=1)[0], policy_number=name)

    with pytest.raises(ValueError, match="policy number"):
        write_pairs([pair], tmp_path / "out" / "inner")

    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "out" / "a").exists()


def test_cli_pairs_link_in_out_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link that appears after the empty-folder check still stops the CLI with exit 2."""
    victim = make_victim(tmp_path)
    out = tmp_path / "out"
    real_prepare = cli_module._prepare_pairs_folder

    def prepare_then_link(folder: Path, *, force: bool) -> int:
        removed = real_prepare(folder, force=force)
        (folder / "labels.csv").symlink_to(victim)
        return removed

    monkeypatch.setattr(cli_module, "_prepare_pairs_folder", prepare_then_link)

    result = invoke("--n", "2", "--out", str(out))

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: --out {str(out)!r} contains 1 symbolic link where evidence-synth writes "
        "(first: 'labels.csv'); it never writes through links, so replace the link with a "
        "regular file or folder, or choose another --out"
    ]
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


def test_force_keeps_hand_made_folder(tmp_path: Path) -> None:
    """A hand-made folder of rx.xml beside a stray labels.csv survives --force."""
    out = tmp_path / "out"
    (out / "my_notes").mkdir(parents=True)
    (out / "my_notes" / "rx.xml").write_text("precious", encoding="utf-8")
    (out / "labels.csv").write_text("x\n", encoding="utf-8")

    result = invoke("--out", str(out), "--n", "2", "--force")

    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: --out {str(out)!r} contains 2 entries that evidence-synth does not write "
        "(first: 'labels.csv', 'my_notes'); --force deletes only a labels.csv that starts "
        "with the header policy_number,label,as_of and SYN-<seed>-<index> folders that "
        "contain only mib.xml and rx.xml, so move those entries or choose another --out"
    ]
    assert (out / "my_notes" / "rx.xml").read_text(encoding="utf-8") == "precious"
    assert (out / "labels.csv").read_text(encoding="utf-8") == "x\n"


@pytest.mark.parametrize(
    "name",
    [
        "my_notes",
        "SYN-3-0000000",
        "SYN-03-00000000",
        "SYN--1-00000000",
        "syn-3-00000000",
        "SYN-3-00000000x",
        "SYN3000000000",
    ],
)
def test_force_keeps_non_policy_folder(tmp_path: Path, name: str) -> None:
    """Only names of the form SYN-<seed>-<8 or more digits> count as pair folders."""
    assert invoke("--n", "2", "--seed", "3", "--out", str(tmp_path)).exit_code == 0
    (tmp_path / name).mkdir()
    (tmp_path / name / "mib.xml").write_text("mine", encoding="utf-8")

    result = invoke("--n", "1", "--out", str(tmp_path), "--force")

    assert result.exit_code == 2
    assert f"contains 1 entry that evidence-synth does not write (first: {name!r})" in (
        result.output
    )
    assert (tmp_path / name / "mib.xml").read_text(encoding="utf-8") == "mine"
    assert (tmp_path / "SYN-3-00000001" / "rx.xml").is_file()


def test_force_names_three_of_many(tmp_path: Path) -> None:
    """Five foreign entries are counted, the first three named, and nothing is deleted."""
    assert invoke("--n", "3", "--seed", "3", "--out", str(tmp_path)).exit_code == 0
    for name in ("a_notes", "b_notes", "c_notes", "d_notes", "e_notes"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "rx.xml").write_text("mine", encoding="utf-8")
    before = snapshot(tmp_path)

    result = invoke("--n", "1", "--out", str(tmp_path), "--force")

    assert result.exit_code == 2
    assert "contains 5 entries that evidence-synth does not write (first: 'a_notes', " in (
        result.output
    )
    assert "'b_notes', 'c_notes')" in result.output
    assert snapshot(tmp_path) == before


def test_force_nested_folders_kept(tmp_path: Path) -> None:
    """A policy folder with a nested folder, even one named mib.xml, is not deleted."""
    assert invoke("--n", "3", "--seed", "3", "--out", str(tmp_path)).exit_code == 0
    (tmp_path / "SYN-3-00000000" / "notes").mkdir()
    (tmp_path / "SYN-3-00000000" / "notes" / "rx.xml").write_text("mine", encoding="utf-8")
    (tmp_path / "SYN-3-00000001" / "mib.xml").unlink()
    (tmp_path / "SYN-3-00000001" / "mib.xml").mkdir()
    before = snapshot(tmp_path)

    result = invoke("--n", "1", "--out", str(tmp_path), "--force")

    assert result.exit_code == 2
    assert "(first: 'SYN-3-00000000', 'SYN-3-00000001')" in result.output
    assert snapshot(tmp_path) == before


def test_force_link_in_pair_folder_kept(tmp_path: Path) -> None:
    """A pair folder whose mib.xml is a link counts as foreign, and the target is kept."""
    victim = make_victim(tmp_path)
    out = tmp_path / "out"
    assert invoke("--n", "2", "--seed", "3", "--out", str(out)).exit_code == 0
    (out / "SYN-3-00000000" / "mib.xml").unlink()
    (out / "SYN-3-00000000" / "mib.xml").symlink_to(victim)
    (out / "labels-link.csv").symlink_to(out / "labels.csv")

    result = invoke("--n", "1", "--out", str(out), "--force")

    assert result.exit_code == 2
    assert "contains 2 entries" in result.output
    assert "(first: 'SYN-3-00000000', 'labels-link.csv')" in result.output
    assert victim.read_text(encoding="utf-8") == VICTIM_TEXT


def test_force_labels_link_kept(tmp_path: Path) -> None:
    """A labels.csv that is a link, even to a real labels file, is foreign."""
    outside = tmp_path / "outside"
    assert invoke("--n", "1", "--seed", "3", "--out", str(outside)).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.csv").symlink_to(outside / "labels.csv")

    result = invoke("--n", "1", "--out", str(out), "--force")

    assert result.exit_code == 2
    assert "(first: 'labels.csv')" in result.output
    assert (outside / "labels.csv").read_text(encoding="utf-8").startswith("policy_number,")


@pytest.mark.parametrize("pairs", [0, 1, 25])
def test_force_deletes_own_output(tmp_path: Path, pairs: int) -> None:
    """--force deletes the labels.csv and pair folders of an earlier run of any size."""
    assert invoke("--n", str(pairs), "--seed", "12", "--out", str(tmp_path)).exit_code == 0

    result = invoke("--n", "2", "--seed", "5", "--out", str(tmp_path), "--force")

    assert result.exit_code == 0, result.output
    expected = [pair.policy_number for pair in generate_pairs(2, seed=5)]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*expected, "labels.csv"])


def test_force_large_index_folder_deleted(tmp_path: Path) -> None:
    """Indexes past 99,999,999 get more than eight digits and still count as pair folders."""
    (tmp_path / "SYN-0-100000000").mkdir()
    (tmp_path / "SYN-0-100000000" / "rx.xml").write_bytes(b"<r/>")

    result = invoke("--n", "1", "--out", str(tmp_path), "--force")

    assert result.exit_code == 0, result.output
    assert not (tmp_path / "SYN-0-100000000").exists()
