"""The ``evidence-train`` command: train a local model artifact, or register one in Snowflake."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evidence_training.errors import EvidenceTrainingError
from evidence_training.models import ModelKind
from evidence_training.options import MAX_SEED, TrainingOptions, seed_range_error

# scikit-learn, matplotlib, pandas and the model client package take several CPU seconds to
# import, so the commands import them when they run. Then `--help` and argument errors stay fast,
# and `train` imports them while the feature workers build the data (workers.run_chunks).
if TYPE_CHECKING:
    from evidence_training.dataset import TrainingSet
    from evidence_training.pipeline import TrainingResult

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    help=(
        "Train the evidence risk model into a local artifact directory (no subcommand), "
        "or register a trained artifact in the Snowflake Model Registry (register)."
    ),
)

_TRAINING_OPTIONS = (
    "synthetic",
    "data",
    "seed",
    "out",
    "version",
    "model",
    "test_fraction",
    "jobs",
    "threads",
    "max_parse_error_fraction",
)

# Imported while the feature workers run, so their cost overlaps the data work.
_TRAINER_MODULES = ("evidence_training.pipeline", "evidence_training.plots")


def _check_seed(seed: int) -> int:
    # typer's own range check names neither the value nor the range, so the message is built here.
    message = seed_range_error(seed)
    if message is not None:
        raise typer.BadParameter(message)
    return seed


@app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    synthetic: Annotated[
        int | None,
        typer.Option(
            min=20,
            help="Generate this many labelled synthetic pairs to train on. The default model "
            "needs at least 200 at the default --test-fraction.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Train on DIR/labels.csv (policy_number,label,as_of) and DIR/<policy>/mib.xml, "
            "rx.xml, as written by evidence-synth.",
            metavar="DIR",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            callback=_check_seed,
            help=f"Seed of the synthetic data, the hold-out split and the model, 0 to {MAX_SEED}.",
        ),
    ] = 0,
    out: Annotated[
        Path,
        typer.Option(
            help="Artifact directory to write (created if missing). Files of an earlier run in "
            "it are replaced, and other files are kept."
        ),
    ] = Path("var/model"),
    version: Annotated[
        str, typer.Option(help="Model version recorded in the artifact, e.g. V2.")
    ] = "V2",
    model: Annotated[
        ModelKind,
        typer.Option(
            help="gbm: GradientBoostingClassifier. hist-gbm: the faster histogram variant."
        ),
    ] = ModelKind.HIST_GBM,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.5, help="Share of rows held out for evaluation.")
    ] = 0.2,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes that generate or read the pairs and extract their features "
            "(1: no workers).",
        ),
    ] = 2,
    threads: Annotated[
        int, typer.Option(min=1, help="OpenMP threads for fitting and scoring the model.")
    ] = 1,
    progress: Annotated[
        bool, typer.Option(help="Show progress bars on stderr when it is a terminal.")
    ] = True,
    max_parse_error_fraction: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Largest share of pairs (0 to 1) that may have a MIB or Rx document that "
            "failed to parse. Such a row gets only default features. Above this share, "
            "evidence-train exits with 2 before training, and 1 accepts any share.",
        ),
    ] = 0.5,
) -> None:
    """Train, evaluate against the rule-based fallback and write the artifact with its report."""
    if ctx.invoked_subcommand is not None:
        explicit = [name for name in _TRAINING_OPTIONS if _given_on_command_line(ctx, name)]
        if explicit:
            msg = f"training options {explicit} cannot be combined with '{ctx.invoked_subcommand}'"
            raise typer.BadParameter(msg)
        return
    if (synthetic is None) == (data is None):
        msg = "pass exactly one of --synthetic N (generated data) or --data DIR (labelled files)"
        raise typer.BadParameter(msg)
    try:
        options = TrainingOptions(
            model_kind=model,
            version=version,
            test_fraction=test_fraction,
            seed=seed,
            threads=threads,
            progress=progress,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--version") from exc
    # Checked here and not in an option callback, because callbacks also run for `register`,
    # which ignores --out.
    _check_out_directory(out)
    started = time.perf_counter()
    try:
        training_set = _load(synthetic, data, seed=seed, jobs=jobs, progress=progress)
        _check_parse_errors(training_set, max_parse_error_fraction)
    except EvidenceTrainingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc

    # Already imported while the workers built the training set.
    from evidence_model_client.errors import ArtifactError

    from evidence_training.pipeline import run_training

    try:
        result = run_training(training_set, out, options)
    except (EvidenceTrainingError, ArtifactError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    _print_summary(result, out, options, time.perf_counter() - started)


@app.command()
def register(
    artifact: Annotated[
        Path, typer.Option(help="Artifact directory written by evidence-train.")
    ] = Path("var/model"),
    connection: Annotated[
        str,
        typer.Option(
            help="Connection name in connections.toml, which the Snowflake connector reads from "
            "SNOWFLAKE_HOME (default ~/.snowflake)."
        ),
    ] = "default",
    database: Annotated[
        str, typer.Option(help="Database that contains the registry.")
    ] = "REALTIME_ML_PIPELINE",
    schema: Annotated[str, typer.Option(help="Schema that contains the registry.")] = "ML_MODELS",
    version: Annotated[
        str | None,
        typer.Option(help="Registry version name [default: the artifact's model_version]."),
    ] = None,
    deploy: Annotated[
        bool, typer.Option(help="Create the inference service after logging the model.")
    ] = True,
    compute_pool: Annotated[
        str, typer.Option(help="Compute pool that builds the image and runs the service.")
    ] = "ML_INFERENCE_POOL",
    image_repo: Annotated[
        str | None,
        typer.Option(
            help="Image repository, e.g. REALTIME_ML_PIPELINE.SPCS.IMAGES [default: hidden repo]."
        ),
    ] = None,
    service_name: Annotated[
        str, typer.Option(help="Name of the inference service.")
    ] = "RISK_MODEL_SVC",
    min_instances: Annotated[
        int,
        typer.Option(min=0, help="Minimum service instances. At 0 the service suspends when idle."),
    ] = 1,
    max_instances: Annotated[int, typer.Option(min=1, help="Maximum service instances.")] = 2,
) -> None:
    """Log the artifact's model in the Snowflake Model Registry and deploy RISK_MODEL_SVC."""
    from evidence_model_client.artifact import ModelArtifact
    from evidence_model_client.errors import ArtifactError

    from evidence_training.registry import ServiceOptions, open_registry, register_artifact

    try:
        loaded = ModelArtifact.load(artifact)
        service = (
            ServiceOptions(
                compute_pool=compute_pool,
                service_name=service_name,
                image_repo=image_repo,
                min_instances=min_instances,
                max_instances=max_instances,
            )
            if deploy
            else None
        )
        registry = open_registry(connection, database=database, schema=schema)
        result = register_artifact(registry, loaded, version_name=version, service=service)
    except (EvidenceTrainingError, ArtifactError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(
        f"registered {result.model_name} version {result.version_name} in {database}.{schema}"
    )
    if result.service_name is not None:
        typer.echo(f"inference service: {result.service_name}")


def _check_out_directory(out: Path) -> None:
    """Reject an ``--out`` path that the run could not create or write, before any data work.

    An existing directory is accepted, also when it is not empty: the run then replaces its
    artifact, report and plot files and keeps every other file.
    """
    if out.is_dir():
        _check_writable(out, out)
        return
    if _occupied(out):
        msg = (
            f"{str(out)!r} {_describe_non_directory(out)}; pass a directory path, which is "
            "created if missing"
        )
        raise typer.BadParameter(msg, param_hint="'--out'")
    for parent in out.parents:
        if parent.is_dir():
            _check_writable(out, parent)
            return
        if _occupied(parent):
            msg = (
                f"cannot create directory {str(out)!r} because {str(parent)!r} "
                f"{_describe_non_directory(parent)}; pass a path whose existing parts are all "
                "directories"
            )
            raise typer.BadParameter(msg, param_hint="'--out'")


def _occupied(path: Path) -> bool:
    # exists() follows symbolic links, so a link to a missing target needs is_symlink().
    return path.exists() or path.is_symlink()


def _describe_non_directory(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "is a symbolic link to a path that does not exist"
    return "exists and is not a directory"


def _check_writable(out: Path, directory: Path) -> None:
    # NOTE: os.access reports every directory as writable for root, except on a read-only file
    # system, so a root run can still fail late when it writes the artifact.
    if not os.access(directory, os.W_OK | os.X_OK):
        msg = (
            f"cannot write to directory {str(directory)!r} for {str(out)!r}: permission "
            "denied; pass a directory you can write to"
        )
        raise typer.BadParameter(msg, param_hint="'--out'")


def _given_on_command_line(ctx: typer.Context, name: str) -> bool:
    # Typer vendors its own click, so ParameterSource is compared by name, not imported.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def main() -> None:
    """Run the ``evidence-train`` command line."""
    app()


def _load(
    synthetic: int | None, data: Path | None, *, seed: int, jobs: int, progress: bool
) -> TrainingSet:
    from evidence_training.dataset import load_directory_set, make_synthetic_set

    if synthetic is not None:
        return make_synthetic_set(
            synthetic, seed=seed, jobs=jobs, progress=progress, preload=_TRAINER_MODULES
        )
    if data is not None:
        return load_directory_set(data, jobs=jobs, progress=progress, preload=_TRAINER_MODULES)
    msg = "pass exactly one of --synthetic N (generated data) or --data DIR (labelled files)"
    raise typer.BadParameter(msg)


def _check_parse_errors(training_set: TrainingSet, max_fraction: float) -> None:
    from evidence_training.dataset import check_parse_errors

    counts = check_parse_errors(training_set, max_fraction)
    # Printed before training, so the counts are visible even if training fails later.
    typer.echo(
        f"documents that failed to parse (their features are the defaults): MIB {counts.mib}, "
        f"Rx {counts.rx}, in {counts.pairs} of {counts.total_pairs} pairs"
    )


def _print_summary(
    result: TrainingResult, out: Path, options: TrainingOptions, total: float
) -> None:
    meta = result.artifact.metadata
    model, fallback = result.model_metrics, result.fallback_metrics
    typer.echo(
        f"trained {meta.model_name} {meta.model_version} ({options.model_kind.value}) on "
        f"{result.train_rows} rows: fit {result.fit_seconds:.1f} s, whole run {total:.1f} s"
    )
    typer.echo(
        f"hold-out ({result.test_rows} rows): ROC AUC model {model.roc_auc:.3f} vs rule-based "
        f"fallback {fallback.roc_auc:.3f} ({model.roc_auc - fallback.roc_auc:+.3f}); "
        f"log loss {model.log_loss:.3f}; Brier {model.brier:.3f}; "
        f"calibration error {model.expected_calibration_error:.3f}"
    )
    typer.echo(f"artifact, report.json and plots written to {out}")
