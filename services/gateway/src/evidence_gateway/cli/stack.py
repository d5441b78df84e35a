"""``evidence-stack``: bring up the local stack, score the bundled samples and keep serving.

Steps: train a model into ``var/model`` when it has none. Start the model server, gateway,
persistence worker and (when installed) dashboard through honcho and the ``Procfile``, and wait
until they respond. Score ``data/samples`` through ``/v1/predict`` and ``/functions/predict``,
check that the rows reached the SQLite store, print the URLs and serve until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from evidence_gateway.cli.render import prediction_table
from evidence_gateway.stack.layout import StackLayout
from evidence_gateway.stack.processes import (
    ProcessGroup,
    StackError,
    dashboard_available,
    has_model_artifact,
    http_ok,
    train_model,
    wait_until,
    warm_up_model,
)
from evidence_gateway.stack.samples import (
    count_stored,
    load_samples,
    score_via_api,
    score_via_function,
)

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, help=__doc__)


def _model_answers(response: httpx.Response) -> bool:
    body: dict[str, Any] = response.json()
    return bool(body.get("checks", {}).get("model", {}).get("ok"))


def _bring_up(
    console: Console, layout: StackLayout, *, with_dashboard: bool, timeout: float
) -> ProcessGroup:
    names = ["model", "gateway", "worker"] + (["dashboard"] if with_dashboard else [])
    group = ProcessGroup(layout, names, layout.environment(dict(os.environ)))
    group.start()
    with console.status("waiting for the model server and the gateway"):
        waited = wait_until(
            f"model server at {layout.model_url}/health",
            lambda: http_ok(f"{layout.model_url}/health"),
            timeout=timeout,
            alive=group.alive,
        )
        warm_up_model(layout.model_url)
        waited += wait_until(
            f"gateway at {layout.gateway_url}/health/ready",
            lambda: http_ok(f"{layout.gateway_url}/health/ready", accept=_model_answers),
            timeout=timeout,
            alive=group.alive,
        )
    console.print(f"started {', '.join(names)} in {waited:.1f} s (logs: {layout.log_path})")
    return group


def _score_samples(console: Console, layout: StackLayout, samples_dir: Path) -> bool:
    samples = load_samples(samples_dir)
    if not samples:
        console.print(f"[yellow]no samples in {samples_dir}; nothing scored[/]")
        return True
    with httpx.Client(base_url=layout.gateway_url, timeout=30.0) as client:
        api_answers = score_via_api(client, samples)
        sql_answers = score_via_function(client, samples)
    console.print(prediction_table("POST /v1/predict", [("API", a) for a in api_answers]))
    console.print(
        prediction_table(
            "POST /functions/predict (one service-function batch)",
            [("SQL", a) for a in sql_answers],
        )
    )
    ids = [a["prediction_id"] for a in [*api_answers, *sql_answers] if "prediction_id" in a]
    with console.status("waiting for the persistence worker to write the rows"):
        counts = count_stored(layout.store_path, ids)
    style = "green" if counts.predictions_found == counts.predictions_expected else "red"
    console.print(
        f"[{style}]{counts.predictions_found} of {counts.predictions_expected} predictions "
        f"are in ML_MODELS__MODEL_PREDICTIONS[/] ({layout.store_path}; table total "
        f"{counts.predictions_total}, FEATURE_STORE__ONLINE_FEATURES rows "
        f"{counts.online_features_total}, waited {counts.waited_seconds} s)"
    )
    return counts.predictions_found == counts.predictions_expected


def _urls(layout: StackLayout, with_dashboard: bool) -> Table:
    table = Table(title="local stack", title_justify="left", show_header=False)
    table.add_row("API docs", f"{layout.gateway_url}/docs")
    table.add_row("metrics", f"{layout.gateway_url}/metrics")
    table.add_row("readiness", f"{layout.gateway_url}/health/ready")
    table.add_row("model server", f"{layout.model_url}/health")
    table.add_row(
        "dashboard", layout.dashboard_url if with_dashboard else "not installed (skipped)"
    )
    table.add_row("store", str(layout.store_path))
    table.add_row("logs", str(layout.log_path))
    return table


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command()
def run(
    once: Annotated[
        bool, typer.Option(help="Score the samples, then stop the stack and exit.")
    ] = False,
    root: Annotated[
        Path, typer.Option(help="Repository root that contains the Procfile.")
    ] = Path(),
    var_dir: Annotated[
        Path | None, typer.Option(help="Runtime directory; default <root>/var.")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option(help="Sample evidence directory; default <root>/data/samples.")
    ] = None,
    gateway_port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    model_port: Annotated[int, typer.Option(help="Local model server port.")] = 5000,
    dashboard_port: Annotated[int, typer.Option(help="Dashboard port.")] = 8501,
    gateway_workers: Annotated[int, typer.Option(min=1, help="Gateway uvicorn workers.")] = 1,
    dashboard: Annotated[
        bool, typer.Option(help="Start the dashboard when its package is installed.")
    ] = True,
    train_rows: Annotated[
        int, typer.Option(min=100, help="Generated applicants to train on when var/model is empty.")
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the generated training data.")] = 7,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each service to become ready.")
    ] = 90.0,
) -> None:
    """Run the local stack (the ``make run`` target)."""
    # Wide enough for the result tables when the output is a log file or CI, not a terminal.
    console = Console(width=None if Console().is_terminal else 140)
    root = root.resolve()
    layout = StackLayout(
        root=root,
        var_dir=(var_dir or root / "var").resolve(),
        gateway_port=gateway_port,
        model_port=model_port,
        dashboard_port=dashboard_port,
        gateway_workers=gateway_workers,
    )
    layout.var_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(layout.prometheus_dir, ignore_errors=True)
    layout.prometheus_dir.mkdir()
    with_dashboard = dashboard and dashboard_available()

    # A supervisor stops the stack with SIGTERM; handle it like Ctrl-C so honcho stops the
    # processes instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupt)
    group: ProcessGroup | None = None
    try:
        if not has_model_artifact(layout.model_dir):
            with (
                console.status(f"training a model on {train_rows} generated applicants"),
                layout.log_path.open("a") as log,
            ):
                seconds = train_model(layout.model_dir, rows=train_rows, seed=seed, log=log)
            console.print(f"trained a model into {layout.model_dir} in {seconds:.1f} s")
        group = _bring_up(console, layout, with_dashboard=with_dashboard, timeout=timeout)
        stored = _score_samples(console, layout, samples or root / "data" / "samples")
        console.print(_urls(layout, with_dashboard))
        if once:
            if not stored:
                raise typer.Exit(1)
            return
        console.print("serving; press Ctrl-C to stop")
        status = group.wait()
        console.print(f"[red]a process of the stack exited (honcho status {status}); stopping[/]")
        raise typer.Exit(1)
    except StackError as exc:
        console.print(f"[red]{exc}[/] (see {layout.log_path})")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        if group is not None:
            group.stop()


def main() -> None:
    """Entry point of ``evidence-stack``."""
    app()
