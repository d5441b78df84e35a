"""supervisord configuration, its log events and the port checks of ``evidence-stack``."""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from evidence_gateway.stack.layout import StackLayout
from evidence_gateway.stack.ports import StackPort, check_ports_free, check_ports_owned
from evidence_gateway.stack.processes import StackError
from evidence_gateway.stack.supervision import (
    DASHBOARD_STOP_WAIT_SECONDS,
    START_RETRIES,
    START_SECONDS,
    STOP_WAIT_SECONDS,
    Supervisor,
    parse_event,
    read_procfile,
    render_config,
    waiting_processes,
)
from evidence_gateway.testing import free_port, script_path
from supervisor.datatypes import dict_of_key_value_pairs  # type: ignore[import-untyped]

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def listener() -> Iterator[int]:
    """A socket listening on a free port of 127.0.0.1, as another stack's server would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("line", "kind", "process", "text"),
    [
        (
            "2026-12-05 01:28:56,387 WARN exited: model (terminated by SIGTERM; not expected)",
            "exited",
            "model",
            "model (terminated by SIGTERM; not expected)",
        ),
        (
            "2026-12-05 01:28:57,390 INFO spawned: 'gateway' with pid 25090",
            "spawned",
            "gateway",
            "'gateway' with pid 25090",
        ),
        (
            "2026-12-05 01:29:10,001 INFO gave up: worker entered FATAL state, too many start "
            "retries too quickly",
            "gave up",
            "worker",
            "worker entered FATAL state, too many start retries too quickly",
        ),
    ],
)
def test_parse_event_state_changes(line: str, kind: str, process: str, text: str) -> None:
    """Lines about a process's state become events naming the process."""
    event = parse_event(line)

    assert event is not None
    assert event.kind == kind
    assert event.process == process
    assert event.text == text


@pytest.mark.parametrize(
    "line",
    [
        "2026-12-05 01:28:48,359 INFO supervisord started with pid 25083",
        "2026-12-05 01:30:52,347 WARN received SIGTERM indicating exit request",
        '{"event": "model server stopped", "level": "info"}',
        "",
    ],
)
def test_parse_event_ignores_other_lines(line: str) -> None:
    """supervisord's own messages and the services' JSON lines are no events."""
    assert parse_event(line) is None


_STOP_LOG = """\
2026-12-06 01:58:00,930 WARN received SIGTERM indicating exit request
2026-12-06 01:58:00,930 INFO waiting for model, worker, gateway, dashboard to die
2026-12-06 01:58:01,507 INFO stopped: dashboard (exit status 0)
2026-12-06 01:58:01,687 WARN stopped: gateway (terminated by SIGTERM)
2026-12-06 01:58:04,099 INFO stopped: worker (exit status 0)
2026-12-06 01:58:04,099 INFO waiting for model to die
2026-12-06 01:58:05,276 WARN stopped: model (terminated by SIGTERM)
"""


@pytest.mark.parametrize(
    ("lines", "expected"),
    [(1, None), (2, "model, worker, gateway, dashboard"), (4, "model, worker"), (6, "model"),
     (7, None)],
)  # fmt: skip
def test_waiting_processes_drops_stopped(lines: int, expected: str | None) -> None:
    """The processes of the last "waiting for" line, less those stopped since."""
    text = "\n".join(_STOP_LOG.splitlines()[:lines])

    assert waiting_processes(text) == expected


def test_render_config_restarts_each_process(tmp_path: Path) -> None:
    """Each selected Procfile process gets autorestart, the retry cap and its own log."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var%1")
    commands = {"model": "evidence-model-server", "worker": "evidence-persistence worker"}

    text = render_config(layout, commands, ["model", "worker"])

    assert "nodaemon=true" in text
    assert text.count("autorestart=true") == 2
    assert f"startsecs={START_SECONDS}" in text
    assert f"startretries={START_RETRIES}" in text
    pidfile = shlex.quote(f"{tmp_path}/var%%1/supervisord.pid")
    guard = f"{shlex.quote(sys.executable)} -m evidence_gateway.stack.orphan_guard"
    guard += f" --parent-pidfile {pidfile} --signal TERM --"
    assert f"command={guard} evidence-persistence worker" in text
    assert f"command={guard} evidence-model-server" in text
    assert f"stdout_logfile={tmp_path}/var%%1/logs/worker.log" in text
    assert text.count("stopasgroup=true") == 2


def test_render_config_stops_gateway_before_worker_and_model(tmp_path: Path) -> None:
    """supervisord stops higher priorities first: dashboard, gateway, worker, then the model."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var")
    names = ["model", "gateway", "worker", "dashboard", "extra"]
    parser = configparser.ConfigParser(interpolation=None)

    parser.read_string(render_config(layout, dict.fromkeys(names, "true"), names))

    priority = {name: parser.getint(f"program:{name}", "priority") for name in names}
    assert sorted(names, key=priority.__getitem__, reverse=True) == [
        "extra",
        "dashboard",
        "gateway",
        "worker",
        "model",
    ]
    assert priority["extra"] == 999


def test_render_config_dashboard_gets_sigkill(tmp_path: Path) -> None:
    """The dashboard's guard sends SIGKILL on supervisord's death, the others SIGTERM."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var")
    commands = {"gateway": "evidence-gateway", "dashboard": "evidence-dashboard"}

    text = render_config(layout, commands, ["gateway", "dashboard"])

    assert "--signal KILL -- evidence-dashboard" in text
    assert "--signal TERM -- evidence-gateway" in text


def test_render_config_dashboard_stops_sooner(tmp_path: Path) -> None:
    """The dashboard, which keeps no state, gets a shorter time before SIGKILL."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var")
    names = ["gateway", "dashboard"]
    parser = configparser.ConfigParser(interpolation=None)

    parser.read_string(render_config(layout, dict.fromkeys(names, "true"), names))

    assert parser.getint("program:dashboard", "stopwaitsecs") == DASHBOARD_STOP_WAIT_SECONDS
    assert parser.getint("program:gateway", "stopwaitsecs") == STOP_WAIT_SECONDS


@pytest.mark.parametrize("workers", [1, 2])
def test_render_config_metrics_dir_gateway_only(tmp_path: Path, workers: int) -> None:
    """With several gateway workers only the gateway gets PROMETHEUS_MULTIPROC_DIR."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / 'va"r%1\\x', gateway_workers=workers)
    commands = {"gateway": "evidence-gateway", "worker": "evidence-persistence worker"}
    parser = configparser.ConfigParser()

    parser.read_string(render_config(layout, commands, ["gateway", "worker"]))

    gateway = parser["program:gateway"]
    assert "environment" not in parser["program:worker"]
    if workers == 1:
        assert "environment" not in gateway
    else:
        assert dict_of_key_value_pairs(gateway["environment"]) == {
            "PROMETHEUS_MULTIPROC_DIR": str(layout.prometheus_dir)
        }


def test_render_config_unknown_process(tmp_path: Path) -> None:
    """A process name missing from the Procfile is reported by name."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var")

    with pytest.raises(StackError, match="no process named dashboard"):
        render_config(layout, {"model": "evidence-model-server"}, ["model", "dashboard"])


def test_read_procfile_lists_stack_processes() -> None:
    """The repository's Procfile defines the four processes the stack runs."""
    commands = read_procfile(REPO_ROOT / "Procfile")

    assert set(commands) == {"model", "gateway", "worker", "dashboard"}
    assert commands["worker"] == "evidence-persistence worker"


def test_read_procfile_missing(tmp_path: Path) -> None:
    """A root without a Procfile raises an error naming the directory."""
    with pytest.raises(StackError, match="no Procfile in"):
        read_procfile(tmp_path / "Procfile")


def test_check_ports_free_accepts_free_port() -> None:
    """A free port passes."""
    check_ports_free([StackPort("gateway", free_port(), "--gateway-port")])


def test_check_ports_free_names_taken_port(listener: int) -> None:
    """A listening port is reported with its role and the option that changes it."""
    ports = [
        StackPort("model server", free_port(), "--model-port"),
        StackPort("gateway", listener, "--gateway-port or GATEWAY_PORT"),
    ]

    with pytest.raises(StackError) as caught:
        check_ports_free(ports)

    message = str(caught.value)
    assert f"port {listener} of the gateway" in message
    assert "already in use" in message
    assert "--gateway-port or GATEWAY_PORT" in message
    assert "model server" not in message


def test_check_ports_free_same_port_twice() -> None:
    """Two roles on one port are rejected before any bind."""
    port = free_port()
    ports = [StackPort("model server", port, "--model-port"), StackPort("gateway", port, "--g")]

    with pytest.raises(StackError, match=f"port {port} is chosen for both"):
        check_ports_free(ports)


def test_check_ports_owned_rejects_foreign_listener(listener: int) -> None:
    """A port served by a process outside the stack is reported; this test's pid is foreign."""
    with pytest.raises(StackError, match="not by this stack"):
        check_ports_owned([StackPort("gateway", listener, "--gateway-port")], own_pids={1})


def _run_stack(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script_path("evidence-stack"), "--once", "--root", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_stack_taken_port_starts_nothing(listener: int, tmp_path: Path) -> None:
    """With the gateway port taken the stack exits 2 before it creates var/ or starts anything."""
    var_dir = tmp_path / "var"

    result = _run_stack(
        ["--var-dir", str(var_dir), "--gateway-port", str(listener),
         "--model-port", str(free_port()), "--no-dashboard"]
    )  # fmt: skip

    assert result.returncode == 2, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert f"port {listener} of the gateway on 127.0.0.1 is already in use" in output
    assert "--gateway-port or GATEWAY_PORT" in output
    assert "nothing was started" in output
    assert not var_dir.exists()


def test_stack_port_from_environment(listener: int, tmp_path: Path) -> None:
    """MODEL_SERVER_PORT chooses the model server's port when --model-port is not given."""
    env = {**os.environ, "MODEL_SERVER_PORT": str(listener), "GATEWAY_PORT": str(free_port())}

    result = _run_stack(["--var-dir", str(tmp_path / "var"), "--no-dashboard"], env)

    assert result.returncode == 2, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert f"port {listener} of the model server" in output
    assert "--model-port or MODEL_SERVER_PORT" in output


def test_stack_worker_metrics_port_taken(listener: int, tmp_path: Path) -> None:
    """A taken PERSISTENCE_METRICS_PORT stops the stack before it starts anything."""
    env = {
        **os.environ,
        "PERSISTENCE_METRICS_PORT": str(listener),
        "MODEL_SERVER_PORT": str(free_port()),
        "GATEWAY_PORT": str(free_port()),
    }

    result = _run_stack(["--var-dir", str(tmp_path / "var"), "--no-dashboard"], env)

    assert result.returncode == 2, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert f"port {listener} of the worker metrics" in output
    assert "PERSISTENCE_METRICS_PORT" in output
    assert "nothing was started" in output


def test_stack_taken_ports_one_line_each(tmp_path: Path) -> None:
    """Two taken ports are named on lines of their own, and the stack exits 2."""
    with socket.socket() as first, socket.socket() as second:
        for sock in (first, second):
            sock.bind(("127.0.0.1", 0))
            sock.listen()
        model_port, gateway_port = first.getsockname()[1], second.getsockname()[1]

        result = _run_stack(
            ["--var-dir", str(tmp_path / "var"), "--no-dashboard",
             "--model-port", str(model_port), "--gateway-port", str(gateway_port)]
        )  # fmt: skip

    assert result.returncode == 2, result.stdout + result.stderr
    starts = [
        line.split(" of ")[0] for line in result.stdout.splitlines() if line.startswith("port")
    ]
    assert starts == [f"port {model_port}", f"port {gateway_port}"]
    assert not (tmp_path / "var").exists()


def _run_stack_in(cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script_path("evidence-stack"), "--once", "--no-dashboard", "--train-rows", "200",
         "--gateway-port", str(free_port()), "--model-port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )  # fmt: skip


def test_stack_outside_root_creates_nothing(tmp_path: Path) -> None:
    """Run outside the repository, the stack names the missing Procfile before it trains."""
    started = time.monotonic()

    result = _run_stack_in(tmp_path, [])

    elapsed = time.monotonic() - started
    output = " ".join(result.stdout.split())
    assert result.returncode == 2, output
    assert f"no Procfile in '{tmp_path}'; run from the repository root or pass --root" in output
    assert "nothing was started" in output
    assert list(tmp_path.iterdir()) == []
    # No training and no settings checks: about 1 s on a 2-core VM.
    assert elapsed < 20


def test_stack_procfile_without_process(tmp_path: Path) -> None:
    """A Procfile that lacks a stack process is named before anything is created."""
    (tmp_path / "Procfile").write_text("model: evidence-model-server\ngateway: evidence-gateway\n")

    result = _run_stack_in(tmp_path, ["--root", str(tmp_path)])

    output = " ".join(result.stdout.split())
    assert result.returncode == 2, output
    assert "has no process named worker" in output
    assert [path.name for path in tmp_path.iterdir()] == ["Procfile"]


@pytest.mark.slow
def test_supervisor_gives_up_failing_process(tmp_path: Path) -> None:
    """A process that exits at once is retried, then left down and reported as given up."""
    (tmp_path / "Procfile").write_text("crasher: python -c 'raise SystemExit(3)'\n")
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var")
    layout.var_dir.mkdir()
    supervisor = Supervisor(layout, ["crasher"], layout.environment(dict(os.environ)))
    supervisor.start()
    try:
        deadline = time.monotonic() + 40
        while supervisor.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = supervisor.alive()
    finally:
        supervisor.stop()

    assert not alive
    assert supervisor.given_up == frozenset({"crasher"})
    log = layout.log_path.read_text()
    assert log.count("exited: crasher (exit status 3; not expected)") == START_RETRIES + 1
    assert "gave up: crasher entered FATAL state" in log


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_supervisor_clean_stop_logs_no_warning(tmp_path: Path) -> None:
    """The uvicorn servers stopped by supervisord exit with status 0, which it logs as INFO."""
    layout = StackLayout(
        root=REPO_ROOT,
        var_dir=tmp_path / "var",
        gateway_port=free_port(),
        model_port=free_port(),
    )
    layout.var_dir.mkdir()
    names = ["model", "gateway"]
    supervisor = Supervisor(layout, names, layout.environment(dict(os.environ)))
    supervisor.start()
    try:
        # Listening means that uvicorn has installed its signal handlers, so the stop below
        # takes the graceful path rather than interrupting the start-up.
        deadline = time.monotonic() + 60
        ports = [layout.model_port, layout.gateway_port]
        while not all(_listening(port) for port in ports) and time.monotonic() < deadline:
            time.sleep(0.2)
        listening = all(_listening(port) for port in ports)
    finally:
        supervisor.stop()

    assert listening, layout.log_path.read_text()
    log = layout.log_path.read_text()
    for name in names:
        assert f"INFO stopped: {name} (exit status 0)" in log, log
    assert "terminated by" not in log, log
    assert "WARN stopped:" not in log, log


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only")
def test_supervisord_sigkill_stops_its_processes(tmp_path: Path) -> None:
    """SIGKILL of supervisord itself: its processes get SIGTERM and exit, none is orphaned."""
    sleep = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(120)'"
    (tmp_path / "Procfile").write_text(f"first: {sleep}\nsecond: {sleep}\n")
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var")
    layout.var_dir.mkdir()
    supervisor = Supervisor(layout, ["first", "second"], layout.environment(dict(os.environ)))
    supervisor.start()
    try:
        deadline = time.monotonic() + 20
        while len(supervisor.pids()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = supervisor.pids()
        supervisord = int((layout.var_dir / "supervisord.pid").read_text().strip())
        os.kill(supervisord, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(psutil.pid_exists(pid) and _running(pid) for pid in pids):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        left = [pid for pid in pids if psutil.pid_exists(pid) and _running(pid)]
    finally:
        supervisor.stop()

    assert len(pids) == 3
    assert left == []


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux only")
def test_supervisord_sigkill_stops_dashboard(tmp_path: Path) -> None:
    """The real dashboard (Streamlit) also exits when supervisord is killed, and frees its port."""
    (tmp_path / "Procfile").write_text("dashboard: evidence-dashboard\n")
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var", dashboard_port=free_port())
    layout.var_dir.mkdir()
    supervisor = Supervisor(layout, ["dashboard"], layout.environment(dict(os.environ)))
    supervisor.start()
    try:
        deadline = time.monotonic() + 60
        while not _listening(layout.dashboard_port) and time.monotonic() < deadline:
            time.sleep(0.2)
        listening = _listening(layout.dashboard_port)
        pids = supervisor.pids()
        supervisord = int((layout.var_dir / "supervisord.pid").read_text().strip())
        os.kill(supervisord, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in pids if _running(pid)]
        # NOTE: in one fresh-clone run the port still accepted connections for a moment after
        # the dashboard's pid had ended. The cause was not found, so the port gets the same
        # 15 s as the processes.
        while _listening(layout.dashboard_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        port_free = not _listening(layout.dashboard_port)
    finally:
        supervisor.stop()

    assert listening
    assert left == []
    assert port_free


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _sleeper_supervisor(tmp_path: Path, procfile: str, name: str) -> Supervisor:
    (tmp_path / "Procfile").write_text(procfile)
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var")
    layout.var_dir.mkdir()
    return Supervisor(layout, [name], layout.environment(dict(os.environ)))


@pytest.mark.slow
def test_supervisor_stop_right_after_start(tmp_path: Path) -> None:
    """A stop in supervisord's first second waits for the spawn, so SIGTERM is not lost."""
    sleep = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(120)'"
    supervisor = _sleeper_supervisor(tmp_path, f"sleeper: {sleep}\n", "sleeper")
    supervisor.start()
    # supervisord spawns after its first one-second poll. Without the stack's wait, a signal
    # sent before then reaches it while it forks the process and is lost, so the stop takes
    # STOP_WAIT_SECONDS and ends in a SIGKILL.
    time.sleep(0.3)
    started = time.monotonic()

    supervisor.stop()

    elapsed = time.monotonic() - started
    log = supervisor.layout.log_path.read_text()
    assert "stopped: sleeper" in log
    assert "SIGKILL" not in log
    assert elapsed < STOP_WAIT_SECONDS - 2, log


@pytest.mark.slow
def test_supervisor_stop_reports_wait(tmp_path: Path) -> None:
    """A process that takes seconds to stop is named while supervisord waits for it."""
    slow = (
        f"{shlex.quote(sys.executable)} -c 'import signal, sys, time; "
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(3), sys.exit(0))); "
        "time.sleep(120)'"
    )
    supervisor = _sleeper_supervisor(tmp_path, f"slow: {slow}\n", "slow")
    supervisor.start()
    waits: list[str] = []

    supervisor.stop(on_wait=waits.append)

    assert waits == ["slow"]
    assert "stopped: slow (exit status 0)" in supervisor.layout.log_path.read_text()
