"""`evidence-synth`: write generated evidence pairs or the curated samples to a directory."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from evidence_synthetic._output import SymlinkInOutputError
from evidence_synthetic._pairs import DEFAULT_EDGE_RATE, iter_pairs
from evidence_synthetic._samples import write_samples
from evidence_synthetic._writer import LABELS_HEADER, write_pairs

app = typer.Typer(add_completion=False, help=__doc__)

# Below this many pairs the progress bar is noise.
_PROGRESS_MIN_PAIRS = 1000
EXIT_INVALID_OPTION = 2
_LABELS_FILE = "labels.csv"
_LABELS_FIRST_LINE = ",".join(LABELS_HEADER)
_PAIR_FILES = frozenset({"mib.xml", "rx.xml"})
# The folder names iter_pairs gives: SYN-<seed>-<index>, the index zero-padded to 8 digits and
# longer past 99,999,999. --seed has no leading zeros and is never negative.
_POLICY_FOLDER = re.compile(r"SYN-(?:0|[1-9][0-9]*)-[0-9]{8,}")
_EXAMPLE_ENTRIES = 3


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_INVALID_OPTION)


def _is_pair_folder(entry: Path) -> bool:
    """Return whether ``entry`` is a folder that an earlier evidence-synth run wrote.

    Such a folder has a name of the form iter_pairs gives and contains one or both of mib.xml
    and rx.xml as regular files and nothing else. An empty folder does not count. Symbolic
    links never count, so ``--force`` does not follow them.
    """
    if not _POLICY_FOLDER.fullmatch(entry.name):
        return False
    if entry.is_symlink() or not entry.is_dir():
        return False
    children = list(entry.iterdir())
    return bool(children) and all(
        child.name in _PAIR_FILES and child.is_file() and not child.is_symlink()
        for child in children
    )


def _is_labels_file(entry: Path) -> bool:
    """Return whether ``entry`` is a regular labels.csv that starts with write_pairs' header."""
    if entry.name != _LABELS_FILE or entry.is_symlink() or not entry.is_file():
        return False
    try:
        with entry.open("rb") as handle:
            first_line = handle.readline(len(_LABELS_FIRST_LINE) + 2)
    except OSError:
        # An unreadable labels.csv cannot be shown to be ours, so it counts as foreign.
        return False
    return first_line.rstrip(b"\r\n") == _LABELS_FIRST_LINE.encode("ascii")


def _remove_previous_pairs(out: Path, entries: list[Path]) -> int:
    """Delete labels.csv and the pair folders in ``out``, and return how many were deleted.

    Nothing is deleted when ``out`` contains anything else, because that was not written by
    this command.
    """
    foreign = [
        entry for entry in entries if not _is_labels_file(entry) and not _is_pair_folder(entry)
    ]
    if foreign:
        names = ", ".join(repr(entry.name) for entry in foreign[:_EXAMPLE_ENTRIES])
        msg = (
            f"--out {str(out)!r} contains {_entries(len(foreign))} that evidence-synth does not "
            f"write (first: {names}); --force deletes only a labels.csv that starts with the "
            f"header {_LABELS_FIRST_LINE} and SYN-<seed>-<index> folders that contain only "
            "mib.xml and rx.xml, so move those entries or choose another --out"
        )
        raise _fail(msg)
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return len(entries)


def _prepare_pairs_folder(out: Path, *, force: bool) -> int:
    """Make ``out`` an empty folder for new pairs, and return how many old entries were deleted.

    A folder that already has entries is rejected without ``force``, because the new labels.csv
    would list only the new pairs while old policy folders stayed beside them.

    Raises:
        typer.Exit: with ``EXIT_INVALID_OPTION`` when ``out`` is a file, cannot be created, or
            is not empty.
    """
    _check_not_file(out)
    removed = 0
    if out.is_dir():
        entries = sorted(out.iterdir())
        if entries and not force:
            msg = (
                f"--out {str(out)!r} is not empty ({_entries(len(entries))}); old policy folders "
                "would stay beside the new labels.csv. Choose an empty or new folder, or pass "
                "--force to delete the labels.csv and pair folders written there before"
            )
            raise _fail(msg)
        removed = _remove_previous_pairs(out, entries)
    _create_folder(out)
    return removed


def _check_not_file(out: Path) -> None:
    if out.exists() and not out.is_dir():
        msg = f"--out {str(out)!r} is a file, not a folder; choose a folder path"
        raise _fail(msg)


def _create_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create --out {str(out)!r}: {exc.strerror}; choose a writable folder path"
        raise _fail(msg) from exc


@app.command()
def main(
    out: Annotated[
        Path,
        typer.Option(
            help="Output folder, created when missing. For pairs it must be empty unless "
            "--force is given. --samples replaces its files in place. A symbolic link below "
            "--out where a file or folder would be written stops the command."
        ),
    ],
    n: Annotated[int, typer.Option(min=0, help="Number of applicants to generate.")] = 1000,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed; the same seed writes the same bytes.")
    ] = 0,
    edge_rate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Probability that a document gets edge cases."),
    ] = DEFAULT_EDGE_RATE,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Application date YYYY-MM-DD for every pair; random in 2022-2025 if unset."
        ),
    ] = None,
    samples: Annotated[
        bool, typer.Option("--samples", help="Write the curated samples instead of --n pairs.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Delete the labels.csv and the SYN-<seed>-<index> folders of mib.xml and "
            "rx.xml that an earlier run wrote to --out before writing pairs. Anything else in "
            "--out stops the command and nothing is deleted.",
        ),
    ] = False,
) -> None:
    """Write DIR/<policy>/mib.xml, DIR/<policy>/rx.xml and DIR/labels.csv.

    Exit status: 0 written, 2 invalid options, including an --out that is a
    file, cannot be created or written, is a non-empty folder without --force,
    or has a symbolic link where a file or folder would be written.
    """
    if samples:
        # The sample files have fixed names, so rewriting them leaves nothing stale behind.
        _check_not_file(out)
        _create_folder(out)
        try:
            written = write_samples(out)
        except SymlinkInOutputError as exc:
            raise _symlinks_found(out, exc) from exc
        except OSError as exc:
            raise _write_failed(exc) from exc
        typer.echo(f"wrote {len(written)} sample files to {out}")
        return
    as_of_date = None
    if as_of is not None:
        try:
            as_of_date = date.fromisoformat(as_of)
        except ValueError:
            msg = f"invalid date {as_of!r}; use the form YYYY-MM-DD"
            raise typer.BadParameter(msg, param_hint="--as-of") from None
    removed = _prepare_pairs_folder(out, force=force)
    if removed:
        typer.echo(f"deleted {_entries(removed)} left in {out} by an earlier run")
    pairs = iter_pairs(n, seed=seed, edge_rate=edge_rate, as_of=as_of_date)
    progress = tqdm(pairs, total=n, unit="pair", disable=n < _PROGRESS_MIN_PAIRS)
    try:
        count = write_pairs(progress, out)
    except SymlinkInOutputError as exc:
        raise _symlinks_found(out, exc) from exc
    except OSError as exc:
        raise _write_failed(exc) from exc
    typer.echo(f"wrote {count} pairs to {out} (labels in {out / _LABELS_FILE})")


def _write_failed(exc: OSError) -> typer.Exit:
    msg = f"cannot write {str(exc.filename)!r}: {exc.strerror}; choose a writable --out folder"
    return _fail(msg)


def _symlinks_found(out: Path, exc: SymlinkInOutputError) -> typer.Exit:
    names = ", ".join(repr(str(path.relative_to(out))) for path in exc.paths[:_EXAMPLE_ENTRIES])
    count = len(exc.paths)
    links = "1 symbolic link" if count == 1 else f"{count} symbolic links"
    msg = (
        f"--out {str(out)!r} contains {links} where evidence-synth writes (first: {names}); "
        "it never writes through links, so replace the link with a regular file or folder, "
        "or choose another --out"
    )
    return _fail(msg)


if __name__ == "__main__":
    app()
