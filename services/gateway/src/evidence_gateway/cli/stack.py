"""``evidence-stack``: bring up the local stack, score the bundled samples and keep serving.

Steps: check that the Procfile and the commands the stack needs exist, lock the runtime folder
(``var`` or ``--var-dir``) against a second stack, and check that the stack's ports are free.
Train a model into ``var/model`` when it has none. Start the model server, gateway,
persistence worker and (when installed) dashboard from the ``Procfile`` under supervisord, and
wait until they respond. Score ``data/samples`` through ``/v1/predict`` and
``/functions/predict``, check that the rows reached the SQLite store, print the URLs and serve
until Ctrl-C. A process that exits is restarted while the others keep serving.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import httpx
import typer
from evidence_logging import INVALID_SETTINGS_EXIT_STATUS
from evidence_model_client.config import ClientSettings, ServerSettings
from evidence_persistence.config import Settings as PersistenceSettings
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evidence_gateway.cli.render import prediction_table
from evidence_gateway.config import Settings as GatewaySettings
from evidence_gateway.settings_check import check_settings, environment_replaced
from evidence_gateway.stack.layout import StackLayout
from evidence_gateway.stack.port_settings import StackPortSettings
from evidence_gateway.stack.ports import StackPort, check_ports_free, check_ports_owned
from evidence_gateway.stack.processes import (
    StackError,
    check_model_dir,
    dashboard_available,
    dashboard_settings_problem,
    find_script,
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
from evidence_gateway.stack.supervision import (
    START_RETRIES,
    ProcessEvent,
    Supervisor,
    check_procfile,
    supervisord_path,
)
from evidence_gateway.stack.var_lock import VarDirLock, VarDirLockedError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, help=__doc__)

_POLL_SECONDS = 0.5


def _model_answers(response: httpx.Response) -> bool:
    body: dict[str, Any] = response.json()
    return bool(body.get("checks", {}).get("model", {}).get("ok"))


def _stack_ports(
    layout: StackLayout, *, with_dashboard: bool, worker_metrics_port: int | None = None
) -> list[StackPort]:
    ports = [
        StackPort("model server", layout.model_port, "--model-port or MODEL_SERVER_PORT"),
        StackPort("gateway", layout.gateway_port, "--gateway-port or GATEWAY_PORT"),
    ]
    if with_dashboard:
        ports.append(
            StackPort("dashboard", layout.dashboard_port, "--dashboard-port or DASHBOARD_PORT")
        )
    # Port 0 lets the worker pick any free port, so only a fixed one can be taken.
    if worker_metrics_port:
        ports.append(StackPort("worker metrics", worker_metrics_port, "PERSISTENCE_METRICS_PORT"))
    return ports


def _worker_metrics_port(environment: dict[str, str]) -> int | None:
    """Return the worker's PERSISTENCE_METRICS_PORT in ``environment``; checked valid before."""
    with environment_replaced(environment):
        return PersistenceSettings().metrics_port


def _wait_for_services(layout: StackLayout, group: Supervisor, timeout: float) -> float:
    model_port, gateway_port = _stack_ports(layout, with_dashboard=False)
    waited = wait_until(
        f"model server at {layout.model_url}/health",
        lambda: http_ok(f"{layout.model_url}/health"),
        timeout=timeout,
        alive=group.alive,
    )
    # The ports were free before the start, but another program could have taken one since.
    # Nothing but the readiness probes may reach a server that this stack did not start.
    check_ports_owned([model_port], group.pids())
    warm_up_model(layout.model_url)
    waited += wait_until(
        f"gateway at {layout.gateway_url}/health/ready",
        lambda: http_ok(f"{layout.gateway_url}/health/ready", accept=_model_answers),
        timeout=timeout,
        alive=group.alive,
    )
    check_ports_owned([gateway_port], group.pids())
    return waited


def _check_settings(environment: dict[str, str]) -> None:
    """Exit with status 2 when a setting of the model server, gateway or worker is invalid.

    Each process would otherwise exit on start, be restarted and given up on, and the cause
    would show only in its log. The dashboard's ``DASHBOARD_*`` settings are checked by its
    own command (``dashboard_settings_problem``), because the gateway package does not import
    the dashboard.
    """
    # The stack has started no thread yet, so replacing os.environ affects nothing else.
    with environment_replaced(environment):
        check_settings(
            {
                ServerSettings: ServerSettings,
                GatewaySettings: GatewaySettings,
                ClientSettings: ClientSettings,
                PersistenceSettings: PersistenceSettings,
            },
            environment,
        )


def _bring_up(console: Console, layout: StackLayout, group: Supervisor, timeout: float) -> None:
    group.start()
    try:
        with console.status("waiting for the model server and the gateway"):
            waited = _wait_for_services(layout, group, timeout)
    except StackError as exc:
        if group.given_up:
            names_down = ", ".join(sorted(group.given_up))
            msg = (
                f"{names_down} exited within seconds of each of {START_RETRIES + 1} starts; "
                f"see {layout.process_log_dir}/<process>.log"
            )
            raise StackError(msg) from exc
        raise
    console.print(
        f"started {', '.join(group.names)} in {waited:.1f} s "
        f"(logs: {layout.log_path} and {layout.process_log_dir}/<process>.log)"
    )


def _score_samples(console: Console, layout: StackLayout, samples_dir: Path) -> bool:
    samples = load_samples(samples_dir)
    if not samples:
        console.print(f"[yellow]no samples in {samples_dir}; nothing scored[/]")
        return True
    try:
        with httpx.Client(base_url=layout.gateway_url, timeout=30.0) as client:
            api_answers = score_via_api(client, samples)
            console.print(prediction_table("POST /v1/predict", [("API", a) for a in api_answers]))
            sql_answers = score_via_function(client, samples)
    except httpx.HTTPStatusError as exc:
        console.print(f"[red]{describe_rejection(exc.response)}[/]")
        return False
    except (httpx.HTTPError, ValueError) as exc:
        # ValueError: a response body that is not JSON.
        console.print(
            f"[red]scoring the samples failed: {exc.__class__.__name__} from "
            f"{layout.gateway_url}[/] (see {layout.process_log_dir / 'gateway.log'})"
        )
        return False
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
    # Short lines, because Rich wraps a long one at the terminal's width mid-phrase.
    console.print(
        f"[{style}]{counts.predictions_found} of {counts.predictions_expected} predictions "
        f"are in ML_MODELS__MODEL_PREDICTIONS[/] (waited {counts.waited_seconds} s)"
    )
    console.print(f"  store: {layout.store_path}")
    console.print(f"  ML_MODELS__MODEL_PREDICTIONS rows in all: {counts.predictions_total}")
    console.print(f"  FEATURE_STORE__ONLINE_FEATURES rows: {counts.online_features_total}")
    return counts.predictions_found == counts.predictions_expected


def describe_rejection(response: httpx.Response) -> str:
    """Describe a non-200 response to the sample batch from its error type and message."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error", {}) if isinstance(body, dict) else {}
    kind = error.get("type", "unknown error") if isinstance(error, dict) else "unknown error"
    message = error.get("message", "") if isinstance(error, dict) else ""
    text = (
        f"the gateway rejected the sample batch: POST /functions/predict returned "
        f"HTTP {response.status_code} {kind}"
    )
    if message:
        text += f" ({message})"
    if response.status_code == 503:
        text += (
            "; the queue is full or not writable. Check GATEWAY_QUEUE_MAX_DEPTH, the disk and "
            "the worker's log"
        )
    return text


def dashboard_status(layout: StackLayout, *, requested: bool, installed: bool) -> str:
    """Return the dashboard's URL, or why it was not started."""
    if not requested:
        return "skipped (--no-dashboard)"
    if not installed:
        return "not installed (skipped)"
    return layout.dashboard_url


def _urls(layout: StackLayout, dashboard: str) -> Table:
    table = Table(title="local stack", title_justify="left", show_header=False)
    table.add_row("API docs", f"{layout.gateway_url}/docs")
    table.add_row("metrics", f"{layout.gateway_url}/metrics")
    table.add_row("readiness", f"{layout.gateway_url}/health/ready")
    table.add_row("model server", f"{layout.model_url}/health")
    table.add_row("dashboard", dashboard)
    table.add_row("store", str(layout.store_path))
    table.add_row("logs", f"{layout.log_path}, {layout.process_log_dir}/<process>.log")
    return table


def _report(console: Console, event: ProcessEvent, layout: StackLayout) -> None:
    log = layout.process_log_dir / f"{event.process}.log"
    if event.kind == "exited":
        # supervisord calls every exit it did not ask for "not expected"; all are restarted.
        text = event.text.replace("; not expected", "").replace("; expected", "")
        # The next line reports what followed: "process started" or, after four quick exits,
        # that the process stays down.
        console.print(f"[yellow]process exited: {text}[/] (log: {log})")
    elif event.kind == "spawned":
        console.print(f"process started: {event.text}")
    elif event.kind == "gave up":
        console.print(
            f"[red]{event.process} stays down: it exited within seconds of each of "
            f"{START_RETRIES + 1} starts[/] (log: {log}). The other processes keep serving; "
            "stop the stack with Ctrl-C and start it again once the cause is fixed."
        )


def _serve(console: Console, group: Supervisor, layout: StackLayout) -> None:
    """Print the processes' exits and restarts until supervisord exits or a signal arrives."""
    console.print("serving; press Ctrl-C to stop")
    while True:
        for event in group.events():
            _report(console, event, layout)
        status = group.wait(timeout=_POLL_SECONDS)
        if status is not None:
            console.print(
                f"[red]supervisord exited with status {status}[/] (see {layout.log_path})"
            )
            raise typer.Exit(1)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that both stop the stack alike."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts. Under `uv run` a process-group SIGTERM arrives twice,
    # once from the sender and once from uv, and a second interrupt raised while the first is
    # handled would escape the stop and end the program with click's status 130.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signal.getsignal(signal.SIGINT) is _interrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if signum == signal.SIGTERM:
        raise _Terminated
    raise KeyboardInterrupt


def _interrupted_status(interrupt: KeyboardInterrupt) -> int:
    """Return the shell's status for a program ended by the signal: 128 plus its number."""
    number = signal.SIGTERM if isinstance(interrupt, _Terminated) else signal.SIGINT
    return 128 + number


@app.command()
def run(
    once: Annotated[
        bool,
        typer.Option(help="Score the samples, then stop the stack and exit; prints no URL table."),
    ] = False,
    root: Annotated[
        Path, typer.Option(help="Repository root that contains the Procfile.")
    ] = Path(),
    var_dir: Annotated[
        Path | None,
        typer.Option(
            help="Runtime folder of the model, queue, store and logs; default <root>/var. "
            "Each stack needs its own."
        ),
    ] = None,
    samples: Annotated[
        Path | None, typer.Option(help="Sample evidence directory; default <root>/data/samples.")
    ] = None,
    gateway_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Gateway port; default $GATEWAY_PORT, else 8000."),
    ] = None,
    model_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Local model server port; default $MODEL_SERVER_PORT, else 5000.",
        ),
    ] = None,
    dashboard_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Dashboard port; default $DASHBOARD_PORT, else 8501."),
    ] = None,
    gateway_workers: Annotated[int, typer.Option(min=1, help="Gateway uvicorn workers.")] = 1,
    dashboard: Annotated[
        bool, typer.Option(help="Start the dashboard when its package is installed.")
    ] = True,
    # evidence-train's default hist-gbm model needs 160 training rows to split a node (two
    # leaves of min_samples_leaf 80), which is 200 rows at its default 20% hold-out.
    train_rows: Annotated[
        int,
        typer.Option(
            min=200,
            help="Generated applicants to train on when var/model is empty, at least 200.",
        ),
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the generated training data.")] = 7,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each service to become ready.")
    ] = 90.0,
) -> None:
    """Run the local stack, which is what make run starts.

    Each port option defaults to the variable that the service itself reads
    (GATEWAY_PORT, MODEL_SERVER_PORT, DASHBOARD_PORT), and the option wins over
    the variable. Every process binds 127.0.0.1. Exit status 2 means a start-up
    configuration problem, and nothing was started. The problem is an invalid
    port variable or GATEWAY_*, MODEL_CLIENT_*, MODEL_SERVER_* or PERSISTENCE_*
    setting, a port that is taken, no Procfile under --root, or a runtime folder
    that another stack holds locked. Other failures exit with status 1.
    """
    # Wide enough for the result tables when the output is a log file or CI, not a terminal.
    console = Console(width=None if Console().is_terminal else 140)
    root = root.resolve()
    ports = _port_settings(
        {
            "GATEWAY_PORT": gateway_port,
            "MODEL_SERVER_PORT": model_port,
            "DASHBOARD_PORT": dashboard_port,
        }
    )
    layout = StackLayout(
        root=root,
        var_dir=(var_dir or root / "var").resolve(),
        gateway_port=ports.gateway_port,
        model_port=ports.model_port,
        dashboard_port=ports.dashboard_port,
        gateway_workers=gateway_workers,
    )
    with_dashboard = dashboard and dashboard_available()
    names = ["model", "gateway", "worker"] + (["dashboard"] if with_dashboard else [])
    _check_before_start(console, layout, names)
    lock = VarDirLock(layout.var_dir)
    try:
        # A folder that exists may be another stack's, so its lock is taken before the
        # settings checks, which take seconds. A missing folder is created and locked only
        # once the checks pass, so that a failed check leaves nothing behind.
        if layout.var_dir.is_dir():
            _lock_var_dir(console, lock)
        _run_locked(
            console,
            layout,
            lock,
            names,
            once=once,
            samples=samples or root / "data" / "samples",
            dashboard=dashboard,
            train_rows=train_rows,
            seed=seed,
            timeout=timeout,
        )
    finally:
        lock.release()


def _check_before_start(console: Console, layout: StackLayout, names: list[str]) -> None:
    """Exit before anything is created when a file or command that the stack needs is missing.

    Each check takes milliseconds, so a wrong --root or a broken install stops the stack
    before it trains a model or creates the runtime folder. The Procfile exits with status
    2, as a start-up configuration problem, the rest with status 1.
    """
    try:
        check_procfile(layout.root / "Procfile", names)
    except StackError as exc:
        _exit_not_started(console, exc, INVALID_SETTINGS_EXIT_STATUS)
    try:
        supervisord_path()
        if not has_model_artifact(layout.model_dir):
            check_model_dir(layout.model_dir)
            find_script("evidence-train")
    except StackError as exc:
        _exit_not_started(console, exc, 1)


def _exit_not_started(console: Console, error: StackError, status: int) -> NoReturn:
    console.print(f"[red]{escape(str(error))}[/]")
    console.print("nothing was started")
    raise typer.Exit(status) from error


def _port_settings(options: dict[str, int | None]) -> StackPortSettings:
    """Read the ports from the environment, where a port option given replaces its variable.

    An invalid variable exits with status 2 and a message that names it, its value and the fix,
    as the other settings do. The options were range-checked by typer already.
    """
    environment = dict(os.environ)
    environment.update({name: str(port) for name, port in options.items() if port is not None})
    with environment_replaced(environment):
        check_settings({StackPortSettings: StackPortSettings}, environment)
        return StackPortSettings()


def _lock_var_dir(console: Console, lock: VarDirLock) -> None:
    """Take the runtime folder's lock, or exit: 2 when another stack holds it, else 1."""
    try:
        lock.acquire()
    except VarDirLockedError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        console.print("nothing was started")
        raise typer.Exit(2) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        console.print(
            f"[red]cannot lock the runtime folder: {escape(str(lock.path))} ({reason}); "
            "pass --var-dir with a writable folder[/]"
        )
        console.print("nothing was started")
        raise typer.Exit(1) from exc


def _run_locked(
    console: Console,
    layout: StackLayout,
    lock: VarDirLock,
    names: list[str],
    *,
    once: bool,
    samples: Path,
    dashboard: bool,
    train_rows: int,
    seed: int,
    timeout: float,
) -> None:
    """Check the settings and ports, then start, check and serve the stack in ``layout``."""
    environment = layout.environment(dict(os.environ))
    with_dashboard = "dashboard" in names
    # Both checks run before either exits, so one run lists every invalid setting.
    problem = dashboard_settings_problem(environment) if with_dashboard else None
    try:
        _check_settings({**environment, **layout.gateway_environment()})
    finally:
        if problem is not None:
            sys.stderr.write(problem)
    if problem is not None:
        raise SystemExit(INVALID_SETTINGS_EXIT_STATUS)
    dashboard_note = dashboard_status(layout, requested=dashboard, installed=with_dashboard)
    try:
        ports = _stack_ports(
            layout,
            with_dashboard=with_dashboard,
            worker_metrics_port=_worker_metrics_port(environment),
        )
        check_ports_free(ports, layout.host)
    except StackError as exc:
        # A taken port is a start-up configuration problem, like an invalid port variable.
        _exit_not_started(console, exc, INVALID_SETTINGS_EXIT_STATUS)
    layout.var_dir.mkdir(parents=True, exist_ok=True)
    _lock_var_dir(console, lock)
    shutil.rmtree(layout.prometheus_dir, ignore_errors=True)
    layout.prometheus_dir.mkdir()

    # A supervisor of this program stops it with SIGTERM; handle it like Ctrl-C so
    # supervisord stops the processes instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupt)
    # SIGINT stays ignored when this program inherited it ignored (nohup, a background job).
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    group: Supervisor | None = None
    serving = False
    try:
        if not has_model_artifact(layout.model_dir):
            with (
                console.status(f"training a model on {train_rows} generated applicants"),
                layout.log_path.open("a") as log,
            ):
                seconds = train_model(layout.model_dir, rows=train_rows, seed=seed, log=log)
            console.print(f"trained a model into {layout.model_dir} in {seconds:.1f} s")
        # supervisord keeps the folder locked while it stops its processes, also after this
        # program was killed.
        inherited = () if lock.fileno is None else (lock.fileno,)
        group = Supervisor(layout, names, environment, inherited_fds=inherited)
        _bring_up(console, layout, group, timeout)
        stored = _score_samples(console, layout, samples)
        for event in group.events():
            _report(console, event, layout)
        if once:
            # The URLs would stop answering a moment later, so --once leaves them out.
            if not stored:
                raise typer.Exit(1)
            return
        console.print(_urls(layout, dashboard_note))
        serving = True
        _serve(console, group, layout)
    except StackError as exc:
        console.print(f"[red]{exc}[/] (see {layout.log_path} and {layout.process_log_dir})")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt as exc:
        console.print("stopping")
        # Ctrl-C or SIGTERM is how serving ends, so that stop exits 0. Before then it cuts the
        # run short, so the stack exits with 128 plus the signal's number, as a shell reports
        # a program that the signal ended.
        if not serving:
            raise typer.Exit(_interrupted_status(exc)) from exc
    finally:
        if group is not None:
            # A second SIGTERM or Ctrl-C must not cut the stop short: `make run` under `uv run`
            # gets a process-group SIGTERM twice, once from the sender and once from uv.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            started = time.perf_counter()
            group.stop(on_wait=lambda waiting: console.print(f"waiting for {waiting} to stop"))
            console.print(f"stopped in {time.perf_counter() - started:.1f} s")


def main() -> None:
    """Entry point of ``evidence-stack``."""
    app()
