"""Command line ``evidence-persistence``: the worker, queue status and dead letters."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import structlog
import typer
from evidence_logging import exit_on_invalid_settings
from prometheus_client import start_http_server
from pydantic import ValidationError

from evidence_persistence._consumer import QueueConsumer
from evidence_persistence._logging import configure_logging, describe_error, error_type_of
from evidence_persistence._queue import PredictionQueue
from evidence_persistence._sink import open_sink
from evidence_persistence._worker import QueueDrainer
from evidence_persistence.config import Settings, get_settings
from evidence_persistence.errors import PersistenceError, SchemaVersionError
from evidence_persistence.metrics import WorkerMetrics
from evidence_persistence.sinks.sqlite import SqliteSink, inspect_store

__all__ = ["app", "main"]

# Typer's pretty tracebacks would print exception messages, which may quote a record's values.
app = typer.Typer(
    help="Drain the durable prediction queue into the prediction tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dead_letters_app = typer.Typer(
    help="Inspect and replay records that failed too often.", pretty_exceptions_enable=False
)
app.add_typer(dead_letters_app, name="dead-letters")

_log = structlog.get_logger("evidence_persistence.cli")


def _consumer(settings: Settings, queue: PredictionQueue) -> QueueConsumer:
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return QueueConsumer(
        queue,
        owner=owner,
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        max_batch_bytes=settings.batch_max_bytes,
    )


def _settings() -> Settings:
    """Read the ``PERSISTENCE_*`` settings, or exit with status 2 naming each invalid variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        exit_on_invalid_settings([(exc, Settings)])


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _fail_on(exc: PersistenceError) -> typer.Exit:
    """Print ``exc`` and return the exit: 2 for a file of a newer release, else 1.

    The messages name files, settings and SQLite error codes, never a record's values.
    """
    return _fail(str(exc), code=2 if isinstance(exc, SchemaVersionError) else 1)


def _reject_newer_schema(exc: SchemaVersionError) -> typer.Exit:
    _log.error("schema version unsupported", **describe_error(exc))
    return _fail_on(exc)


def _missing_queue_message(path: Path) -> str:
    message = f"no queue file at {str(path.resolve())!r}"
    if not path.is_absolute():
        message += (
            f" (PERSISTENCE_QUEUE_PATH {str(path)!r} is relative to the current directory "
            f"{str(Path.cwd())!r})"
        )
    return (
        f"{message}; set PERSISTENCE_QUEUE_PATH to the queue file that the gateway and the "
        "worker use, or run the command from the directory they run in"
    )


def _queue_tables(path: Path) -> set[str]:
    """Return the table names of the SQLite file at ``path``, opened read-only."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(name) for (name,) in rows.fetchall()}
    finally:
        connection.close()


def _existing_queue(settings: Settings, *, upgrade: bool = True) -> PredictionQueue:
    """Open the configured queue for a command that must not create one.

    A command that only reads passes ``upgrade=False``, so that it neither migrates a queue of
    an older schema version, which the running gateway and worker may still use, nor fails on
    a read-only one.

    Raises:
        typer.Exit: the file is missing or is not a prediction queue; the message names the
            path and the setting.
    """
    path = settings.queue_path
    if not path.is_file():
        raise _fail(_missing_queue_message(path))
    try:
        tables = _queue_tables(path)
    except sqlite3.Error as exc:
        msg = (
            f"cannot read {str(path.resolve())!r} as an SQLite file ({exc}); check "
            "PERSISTENCE_QUEUE_PATH"
        )
        raise _fail(msg) from exc
    if not {"queue_items", "dead_letters"} <= tables:
        msg = (
            f"{str(path.resolve())!r} is not a prediction queue (it has no queue_items and "
            "dead_letters tables); check PERSISTENCE_QUEUE_PATH"
        )
        raise _fail(msg)
    return PredictionQueue.from_settings(settings, upgrade=upgrade)


def _start_metrics_server(metrics: WorkerMetrics, host: str, port: int) -> None:
    """Serve the worker's metrics, or exit with status 2 naming the address and the fix."""
    try:
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        _log.error("metrics endpoint failed", host=host, port=port, **describe_error(exc))
        reason = exc.strerror or type(exc).__name__
        msg = (
            f"cannot serve metrics on {host}:{port} ({reason}); choose a free port with "
            "--metrics-port or PERSISTENCE_METRICS_PORT (0 picks any free port), or stop the "
            "process that uses it"
        )
        raise _fail(msg, code=2) from None
    _log.info("metrics endpoint started", host=host, port=server.server_port)


def _drain_until_signal(
    drainer: QueueDrainer,
    stop: threading.Event,
    received: list[int],
    *,
    once: bool,
    on_stop: Callable[[], None],
    halt: threading.Event | None = None,
) -> None:
    """Run ``drainer`` in a thread; this thread turns SIGTERM or SIGINT into ``stop``.

    The first signal sets ``stop``, on which the drainer drains the queue for its grace time.
    A second signal sets ``halt``, on which it returns after the batch in progress.

    A Python signal handler runs in the main thread between any two bytecodes, also in the
    middle of ``threading.Event.set`` or of writing a log line. A handler that set the event
    or logged could then wait for a lock this thread already holds, and the worker would
    hang for ever (seen with repeated SIGTERM and SIGINT). So the handler only appends the
    signal number to ``received``, which takes no lock, and the loop below sets the events.

    Raises:
        Exception: Whatever ``drainer.run`` raised, re-raised here.
    """
    failures: list[Exception] = []
    halt = halt if halt is not None else threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    def drain() -> None:
        try:
            drainer.run(stop, exit_when_empty=once, on_stop=on_stop, halt=halt)
        except Exception as exc:
            failures.append(exc)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(target=drain, name="drain")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if received and not stop.is_set():
            stop.set()
        if len(received) > 1 and not halt.is_set():
            halt.set()
    if failures:
        raise failures[0]


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Exit when the queue is empty instead of polling.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on this port (overrides the setting)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Records per batch (overrides the setting).")
    ] = None,
) -> None:
    """Drain the queue into the configured sink until SIGTERM or SIGINT.

    On a signal the worker drains the queue until it stays empty or
    PERSISTENCE_STOP_GRACE_SECONDS have passed, finishes the batch in
    progress, then exits with 0. A second signal ends the drain after the
    batch in progress. Exits with 2 when a PERSISTENCE_* setting is invalid,
    the sink's settings are incomplete, the metrics port cannot be bound, or
    the queue or store file has a schema version newer than this release
    supports.
    """
    settings = _settings()
    configure_logging(settings.log_level)
    queue = PredictionQueue.from_settings(settings)
    metrics = WorkerMetrics(queue)
    port = metrics_port if metrics_port is not None else settings.metrics_port
    if port is not None:
        _start_metrics_server(metrics, settings.metrics_host, port)
    try:
        sink = open_sink(settings, metrics)
    except PersistenceError as exc:
        # The message names missing settings, never a record, so the operator sees it.
        _log.error("sink configuration invalid", **describe_error(exc))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        # Checked before the first claim, so that a newer store is reported even while the
        # queue is empty, and no record is claimed for a store this release cannot write.
        queue.file.check_schema_version()
        if isinstance(sink, SqliteSink):
            sink.check_schema_version()
    except SchemaVersionError as exc:
        sink.close()
        queue.close()
        raise _reject_newer_schema(exc) from exc

    stop = threading.Event()
    received: list[int] = []

    def log_stop() -> None:
        signal_name = signal.Signals(received[0]).name if received else None
        _log.info("stop requested", signal=signal_name)

    drainer = QueueDrainer(
        _consumer(settings, queue),
        sink,
        batch_size=batch_size or settings.batch_size,
        poll_interval_seconds=settings.poll_interval_seconds,
        retry_backoff_max_seconds=settings.retry_backoff_max_seconds,
        metrics=metrics,
        clock_skew_tolerance_seconds=settings.clock_skew_tolerance_seconds,
        stop_grace_seconds=settings.stop_grace_seconds,
    )
    _log.info(
        "worker configured",
        queue_path=str(settings.queue_path),
        sink=settings.sink,
        store_raw_evidence=settings.store_raw_evidence,
    )
    try:
        _drain_until_signal(drainer, stop, received, once=once, on_stop=log_stop)
    except SchemaVersionError as exc:
        # Another process replaced or migrated a file after the check above.
        raise _reject_newer_schema(exc) from exc
    except Exception as exc:
        # Python would print the traceback with the exception's message, which may quote the
        # batch's records. The log line keeps the type and the code locations.
        _log.error("worker failed", exc_info=exc)
        raise typer.Exit(1) from None
    finally:
        sink.close()
        queue.close()


@app.command()
def status() -> None:
    """Print the queue's depth, age, dead letters and integrity, and the store's state.

    The integrity field is "ok" or "corrupt", from SQLite's PRAGMA
    quick_check, which reads the whole file. The store field is "ok",
    "missing", "unreadable", "needs_migration" (nullable columns missing,
    which the worker adds with its next batch) or "schema_mismatch" for the
    SQLite store at PERSISTENCE_STORE_PATH, and "unchecked" for another
    sink. Exits with 1 when the queue file is corrupt or the store is
    unreadable or in schema_mismatch, with 1, creating nothing, when the file at
    PERSISTENCE_QUEUE_PATH does not exist, and with 2 when a newer release
    wrote it. A missing store only shows in the JSON, because the worker
    creates the store with its first batch.
    """
    settings = _settings()
    queue = _existing_queue(settings, upgrade=False)
    path = str(settings.queue_path.resolve())
    try:
        problems = queue.integrity_problems()
        report = {
            "queue_path": path,
            "depth": queue.depth(),
            "oldest_age_seconds": round(queue.oldest_age_seconds(), 3),
            "dead_letters": queue.dead_letter_count(),
            "integrity": "corrupt" if problems else "ok",
        }
    except PersistenceError as exc:
        raise _fail_on(exc) from exc
    store_state, store_problem = "unchecked", None
    if settings.sink == "sqlite":
        store_state, store_problem = inspect_store(settings.store_path)
        report["store_path"] = str(settings.store_path.resolve())
    report["store"] = store_state
    typer.echo(json.dumps(report))
    if store_state == "needs_migration":
        typer.echo(f"note: {store_problem}", err=True)
    elif store_problem is not None and store_state != "missing":
        typer.echo(f"error: {store_problem}", err=True)
    if problems:
        msg = (
            f"queue file {path!r} is corrupt: PRAGMA quick_check found {len(problems)} "
            f"problem(s), the first being {problems[0]!r}; stop the gateway and the worker, "
            "then recover the file as docs/persistence.md, section Corrupt SQLite file, describes"
        )
        raise _fail(msg)
    if store_state in ("unreadable", "schema_mismatch"):
        raise typer.Exit(1)


@dead_letters_app.command("list")
def list_dead_letters(
    limit: Annotated[int, typer.Option(min=1, help="Maximum number of entries to print.")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line.")
    ] = False,
    show_errors: Annotated[
        bool,
        typer.Option(
            "--show-errors",
            help="Print each error's full message. It may quote the record's values (policy "
            "numbers, XML), so keep the output out of logs.",
        ),
    ] = False,
) -> None:
    """List dead letters, oldest failure first: prediction id, attempts, time and error type.

    Only the error's type is printed unless --show-errors is given. Exits with
    1, creating nothing, when the file at PERSISTENCE_QUEUE_PATH does not
    exist.
    """
    settings = _settings()
    consumer = _consumer(settings, _existing_queue(settings, upgrade=False))
    try:
        letters = consumer.list_dead_letters(limit)
    except PersistenceError as exc:
        raise _fail_on(exc) from exc
    for letter in letters:
        error = letter.error if show_errors else error_type_of(letter.error)
        failed_at = datetime.fromtimestamp(letter.failed_at, UTC).isoformat(timespec="seconds")
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "prediction_id": letter.prediction_id,
                        "attempts": letter.attempts,
                        "failed_at": failed_at,
                        "error": error,
                    }
                )
            )
        else:
            typer.echo(f"{letter.prediction_id}\tattempts={letter.attempts}\t{failed_at}\t{error}")
    if not as_json:
        typer.echo(f"{len(letters)} dead letter(s)", err=True)


@dead_letters_app.command("replay")
def replay_dead_letters(
    prediction_ids: Annotated[
        list[str] | None, typer.Argument(help="Prediction ids to replay.", show_default=False)
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Move dead letters back into the queue with their attempt count reset.

    Prints the number of records moved and the ids replayed. Exits with 1 when
    an id is not among the dead letters (the others are still replayed), and
    with 2 on a usage error.
    """
    if bool(prediction_ids) == replay_all:
        raise _fail("pass prediction ids or --all, not both and not neither", code=2)
    settings = _settings()
    consumer = _consumer(settings, _existing_queue(settings))
    try:
        if replay_all:
            typer.echo(f"replayed {consumer.replay_dead_letters(None)} record(s)")
            return
        replayed: list[str] = []
        not_found: list[str] = []
        moved = 0
        # dict.fromkeys drops repeated ids and keeps the order they were given in.
        for prediction_id in dict.fromkeys(prediction_ids or []):
            count = consumer.replay_dead_letters([prediction_id])
            moved += count
            (replayed if count else not_found).append(prediction_id)
    except PersistenceError as exc:
        raise _fail_on(exc) from exc
    summary = f"replayed {moved} record(s)"
    typer.echo(f"{summary}: {' '.join(replayed)}" if replayed else summary)
    if not_found:
        raise _fail(f"not found among the dead letters: {' '.join(not_found)}")


def main() -> None:
    """Run the command line."""
    app()
