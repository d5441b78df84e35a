"""`evidence-synth`: write generated evidence pairs or the curated samples to a directory."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from tqdm import tqdm

from evidence_synthetic._pairs import DEFAULT_EDGE_RATE, iter_pairs
from evidence_synthetic._samples import write_samples
from evidence_synthetic._writer import write_pairs

app = typer.Typer(add_completion=False, help=__doc__)

# Below this many pairs the progress bar is noise.
_PROGRESS_MIN_PAIRS = 1000


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="Output directory; created when missing.")],
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
) -> None:
    """Write DIR/<policy>/mib.xml, DIR/<policy>/rx.xml and DIR/labels.csv."""
    if samples:
        written = write_samples(out)
        typer.echo(f"wrote {len(written)} sample files to {out}")
        return
    as_of_date = None
    if as_of is not None:
        try:
            as_of_date = date.fromisoformat(as_of)
        except ValueError:
            msg = f"invalid date {as_of!r}; use the form YYYY-MM-DD"
            raise typer.BadParameter(msg, param_hint="--as-of") from None
    pairs = iter_pairs(n, seed=seed, edge_rate=edge_rate, as_of=as_of_date)
    progress = tqdm(pairs, total=n, unit="pair", disable=n < _PROGRESS_MIN_PAIRS)
    count = write_pairs(progress, out)
    typer.echo(f"wrote {count} pairs to {out} (labels in {out / 'labels.csv'})")


if __name__ == "__main__":
    app()
