"""Run the Procfile's processes under supervisord, which restarts a process that exits.

honcho, which runs the Procfile by hand, stops every process once any one exits. Under
supervisord (Supervisor 4.3, run in the foreground) the other processes keep serving while the
exited one is restarted, as ``docker compose`` does with ``restart: unless-stopped``. A process
that exits within ``START_SECONDS`` of its start counts as a failed start. supervisord retries
it ``START_RETRIES`` times, waiting 1 s longer after each attempt, then leaves it in the FATAL
state and logs ``gave up``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil
from honcho.environ import parse_procfile

from evidence_gateway.stack import orphan_guard
from evidence_gateway.stack.layout import StackLayout
from evidence_gateway.stack.orphan_guard import set_parent_death_signal
from evidence_gateway.stack.processes import StackError

__all__ = [
    "START_RETRIES",
    "START_SECONDS",
    "STOP_WAIT_SECONDS",
    "ProcessEvent",
    "Supervisor",
    "check_procfile",
    "parse_event",
    "read_procfile",
    "render_config",
    "supervisord_path",
    "waiting_processes",
]

START_SECONDS = 5
"""A process that exits sooner than this after its start counts as a failed start."""
START_RETRIES = 3
"""Failed starts in a row after which supervisord gives up and leaves the process down."""
STOP_WAIT_SECONDS = 10
"""Time between SIGTERM and SIGKILL when the stack stops a process, except the dashboard."""
DASHBOARD_STOP_WAIT_SECONDS = 3
"""Time between SIGTERM and SIGKILL for the dashboard, which keeps no state to lose."""
STOP_PROGRESS_SECONDS = 1.5
"""A stop that takes longer than this reports which processes supervisord still waits for."""
SPAWN_WAIT_SECONDS = 3.0
"""Longest wait, before a stop, for supervisord's processes to be started (see ``stop``)."""

# supervisord starts lower priorities first and stops higher ones first, one at a time. The
# gateway stops before the worker, so the worker's stop drain writes every record the gateway
# accepted, and the model server stops last, so requests still in flight get the model's score
# rather than the fallback. Processes not named here get supervisord's default of 999.
_PRIORITIES = {"model": 100, "worker": 200, "gateway": 300, "dashboard": 400}

# supervisord's log lines about process state, such as
# "2026-12-05 01:40:02,113 INFO exited: model (terminated by SIGTERM; not expected)".
_EVENT = re.compile(r"^\S+ \S+ \w+ (?P<kind>spawned|success|exited|gave up): (?P<text>.*)$")
_PROCESS_NAME = re.compile(r"^'?(?P<name>[\w-]+)'?")
# supervisord's line while it stops processes, such as "... INFO waiting for dashboard to die".
_WAITING = re.compile(r"^\S+ \S+ \w+ waiting for (?P<names>.+) to die$")
_STOPPED = re.compile(r"^\S+ \S+ \w+ (?:stopped|exited): (?P<name>[\w-]+) ")


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    """A state change of one process, from a supervisord log line.

    ``kind`` is ``spawned`` (started, or restarted), ``success`` (stayed up for
    ``START_SECONDS``), ``exited`` or ``gave up`` (left in the FATAL state). ``text`` is
    supervisord's own message, such as ``model (terminated by SIGTERM; not expected)``.
    """

    kind: str
    process: str
    text: str


def parse_event(line: str) -> ProcessEvent | None:
    """Parse one line of supervisord's log; return None for lines about anything else."""
    match = _EVENT.match(line.strip())
    if match is None:
        return None
    text = match.group("text")
    name = _PROCESS_NAME.match(text)
    return ProcessEvent(match.group("kind"), name.group("name") if name else "", text)


def read_procfile(path: Path) -> dict[str, str]:
    """Return the Procfile's commands by process name.

    Raises:
        StackError: the file is missing.
    """
    if not path.is_file():
        msg = f"no Procfile in {str(path.parent)!r}; run from the repository root or pass --root"
        raise StackError(msg)
    procfile = parse_procfile(path.read_text(encoding="utf-8"))
    return {name: str(command) for name, command in procfile.processes.items()}


def check_procfile(path: Path, names: Sequence[str]) -> dict[str, str]:
    """Return the Procfile's commands after checking that it defines every one of ``names``.

    Raises:
        StackError: the file is missing, or a name is not in it.
    """
    commands = read_procfile(path)
    missing = [name for name in names if name not in commands]
    if missing:
        msg = f"the Procfile {str(path)!r} has no process named {', '.join(missing)}"
        raise StackError(msg)
    return commands


def supervisord_path() -> Path:
    """Return the ``supervisord`` next to this interpreter, which ``make setup`` installs.

    Raises:
        StackError: it is missing.
    """
    path = Path(sys.executable).parent / "supervisord"
    if not path.is_file():
        msg = f"supervisord not found at {path}; run `make setup`"
        raise StackError(msg)
    return path


def _environment_line(variables: dict[str, str]) -> str:
    # supervisord splits KEY="value" pairs with a non-POSIX shlex, which has no escape character, so
    # a value is quoted with a quote character that it does not contain.
    pairs = []
    for key, value in variables.items():
        quote = next((mark for mark in "\"'" if mark not in value), None)
        if quote is None:
            msg = f"{key} cannot be passed to supervisord: its value contains both quote marks"
            raise StackError(msg)
        pairs.append(f"{key}={quote}{_quote(value)}{quote}")
    return ",".join(pairs)


def _quote(value: str) -> str:
    # supervisord reads its file with ConfigParser interpolation, where "%" starts a reference.
    return value.replace("%", "%%")


# Streamlit ignores SIGTERM once the pipe to supervisord has no reader, and a dashboard keeps
# no state that a hard stop could lose, so it gets SIGKILL when supervisord dies.
_PARENT_DEATH_SIGNALS = {"dashboard": "KILL"}


# A shorter grace for processes whose hard stop loses nothing. Streamlit stops in under 1 s
# once its SIGTERM handler is installed, and dies at once before that.
_STOP_WAIT_SECONDS = {"dashboard": DASHBOARD_STOP_WAIT_SECONDS}


def _guarded(name: str, command: str, pidfile: Path) -> str:
    # supervisord splits the command line itself, with shell-like quoting and no shell.
    guard = [sys.executable, "-m", orphan_guard.__name__, "--parent-pidfile", str(pidfile)]
    guard += ["--signal", _PARENT_DEATH_SIGNALS.get(name, "TERM")]
    return f"{shlex.join(guard)} -- {command}"


def render_config(layout: StackLayout, commands: dict[str, str], names: Sequence[str]) -> str:
    """Render a supervisord configuration that runs ``names`` from ``commands`` in the foreground.

    Every process gets ``autorestart=true``, and its stdout and stderr go to
    ``<var>/logs/<name>.log``. supervisord's log of state changes goes to its stdout, which
    :class:`Supervisor` sends to ``<var>/stack.log``.

    Raises:
        StackError: a name is not in the Procfile.
    """
    missing = [name for name in names if name not in commands]
    if missing:
        msg = f"the Procfile has no process named {', '.join(missing)}"
        raise StackError(msg)
    pidfile = layout.var_dir / "supervisord.pid"
    lines = [
        "[supervisord]",
        "nodaemon=true",
        # In the foreground supervisord writes its log to stdout as well, which goes to
        # <var>/stack.log together with its start-up errors, so the file log is switched off.
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        f"pidfile={_quote(str(pidfile))}",
        f"childlogdir={_quote(str(layout.process_log_dir))}",
        "loglevel=info",
    ]
    if os.geteuid() == 0:
        # Says that running as root is intended; supervisord logs a CRIT line otherwise.
        lines.append("user=root")
    lines.append("")
    for name in names:
        log = _quote(str(layout.process_log_dir / f"{name}.log"))
        extra_environment = layout.gateway_environment() if name == "gateway" else {}
        lines += [
            f"[program:{name}]",
            f"command={_quote(_guarded(name, commands[name], pidfile))}",
            *([f"environment={_environment_line(extra_environment)}"] if extra_environment else []),
            f"directory={_quote(str(layout.root))}",
            f"priority={_PRIORITIES.get(name, 999)}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={START_SECONDS}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={_STOP_WAIT_SECONDS.get(name, STOP_WAIT_SECONDS)}",
            # uvicorn's worker processes and Streamlit's children share the process group.
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={log}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "",
        ]
    return "\n".join(lines)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM to supervisord when
    # the process that started it dies, even by SIGKILL, and supervisord then stops the stack.
    # supervisord's own children get the same guard from orphan_guard (see render_config).
    set_parent_death_signal(signal.SIGTERM)


class Supervisor:
    """supervisord in the foreground running some of the Procfile's processes.

    supervisord runs in a session of its own, so a Ctrl-C in the terminal reaches only
    ``evidence-stack``, which then stops supervisord, and supervisord stops the processes.
    supervisord inherits the file descriptors in ``inherited_fds``, such as the runtime
    folder's lock, which then stays held until supervisord exits too. It closes them in the
    processes it starts (every descriptor from 3 up to its ``minfds``, 1024 by default).
    """

    def __init__(
        self,
        layout: StackLayout,
        names: Sequence[str],
        env: dict[str, str],
        *,
        inherited_fds: Sequence[int] = (),
    ) -> None:
        self.layout = layout
        self.names = list(names)
        self.env = env
        self.inherited_fds = tuple(inherited_fds)
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._log_offset = 0
        self._given_up: set[str] = set()
        self._spawned: set[str] = set()

    @property
    def config_path(self) -> Path:
        """supervisord configuration file written by :meth:`start`."""
        return self.layout.var_dir / "supervisord.conf"

    def start(self) -> None:
        """Write the configuration and start supervisord, which starts the processes."""
        commands = read_procfile(self.layout.root / "Procfile")
        self.layout.process_log_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render_config(self.layout, commands, self.names))
        log_path = self.layout.log_path
        self._log_offset = log_path.stat().st_size if log_path.exists() else 0
        command = [
            str(supervisord_path()),
            "--configuration",
            str(self.config_path),
        ]
        # supervisord writes its own start-up errors (a bad configuration) to stderr.
        self._output = self.layout.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed command: our supervisord and config
            command,
            cwd=self.layout.root,
            env=self.env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            pass_fds=self.inherited_fds,
        )

    def alive(self) -> bool:
        """Tell whether supervisord runs and no process has been given up."""
        self.events()
        running = self._process is not None and self._process.poll() is None
        return running and not self._given_up

    @property
    def given_up(self) -> frozenset[str]:
        """Processes that supervisord left in the FATAL state after too many failed starts."""
        return frozenset(self._given_up)

    def events(self) -> list[ProcessEvent]:
        """Return the process state changes that supervisord logged since the last call."""
        path = self.layout.log_path
        if not path.exists():
            return []
        with path.open("rb") as log:
            log.seek(self._log_offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1
        self._log_offset += complete
        found = []
        for line in data[:complete].decode("utf-8", errors="replace").splitlines():
            event = parse_event(line)
            if event is not None:
                found.append(event)
                if event.kind == "gave up":
                    self._given_up.add(event.process)
                elif event.kind == "spawned":
                    self._spawned.add(event.process)
        return found

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for supervisord to exit; return its status, or None after ``timeout`` seconds."""
        if self._process is None:
            return 0
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def pids(self) -> set[int]:
        """Return the ids of supervisord and every process below it."""
        if self._process is None or self._process.poll() is not None:
            return set()
        try:
            parent = psutil.Process(self._process.pid)
            return {parent.pid, *(child.pid for child in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def stop(
        self,
        timeout: float = STOP_WAIT_SECONDS + 10.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Ask supervisord to stop its processes; kill them all if it does not in time.

        When the stop takes longer than ``STOP_PROGRESS_SECONDS``, ``on_wait`` gets the names
        of the processes that supervisord still waits for, each time they change.
        """
        process = self._process
        if process is not None and process.poll() is None:
            stop_offset = self.layout.log_path.stat().st_size
            self._wait_for_spawns()
            process.send_signal(signal.SIGTERM)
            try:
                self._wait_reporting(process, timeout, stop_offset, on_wait)
            except subprocess.TimeoutExpired:
                _kill_tree(process.pid)
                process.wait(timeout=5.0)
        if self._output is not None:
            self._output.close()
            self._output = None

    def _wait_for_spawns(self) -> None:
        """Wait until every process was spawned and runs its own program, at most a few seconds.

        supervisord sends the stop signal to a process group. A signal that arrives between
        supervisord's fork and the child's exec is lost: the group may not exist yet, or the
        forked copy of supervisord handles the signal and then execs the program anyway.
        supervisord then waits the whole ``stopwaitsecs`` before its SIGKILL. A SIGTERM that
        reaches supervisord in its first second, before it spawns, ends in that window,
        because supervisord spawns and then stops in the same pass of its loop.

        NOTE: a process that supervisord restarts at the moment of the stop can still lose
        its signal; that costs its ``stopwaitsecs``.
        """
        deadline = time.monotonic() + SPAWN_WAIT_SECONDS
        while time.monotonic() < deadline:
            self.events()
            expected = set(self.names) - self._given_up
            if expected <= self._spawned and self._children_run_own_programs():
                return
            if self._process is None or self._process.poll() is not None:
                return
            time.sleep(0.05)

    def _children_run_own_programs(self) -> bool:
        """Tell whether no child of supervisord is a fork that has not yet exec'd its program."""
        if self._process is None:
            return True
        try:
            parent = psutil.Process(self._process.pid)
            own_command = parent.cmdline()
            children = parent.children()
        except psutil.Error:
            return True
        for child in children:
            try:
                if child.cmdline() == own_command:
                    return False
            except psutil.Error:
                # Gone, or a zombie: it receives no signal either way.
                continue
        return True

    def _wait_reporting(
        self,
        process: subprocess.Popen[bytes],
        timeout: float,
        stop_offset: int,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        """Wait for supervisord to exit; report its "waiting for" names after a while.

        Raises:
            subprocess.TimeoutExpired: supervisord still runs after ``timeout`` seconds.
        """
        started = time.monotonic()
        reported = None
        while True:
            try:
                process.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
            else:
                return
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise subprocess.TimeoutExpired(process.args, timeout)
            if on_wait is None or elapsed < STOP_PROGRESS_SECONDS:
                continue
            waiting = self._waiting_for(stop_offset)
            if waiting is not None and waiting != reported:
                on_wait(waiting)
                reported = waiting

    def _waiting_for(self, offset: int) -> str | None:
        """Return the processes that supervisord still waits for, from its log after ``offset``."""
        with self.layout.log_path.open("rb") as log:
            log.seek(offset)
            return waiting_processes(log.read().decode("utf-8", errors="replace"))


def waiting_processes(log_text: str) -> str | None:
    """Return the processes that supervisord waits for to stop, from its log lines.

    supervisord logs "waiting for a, b to die" only every few seconds, so the processes that
    it logged as stopped or exited since its last such line are left out.

    Returns:
        The names, comma-separated, or None when it waits for none.
    """
    names: list[str] = []
    for line in log_text.splitlines():
        waiting = _WAITING.match(line.strip())
        if waiting is not None:
            names = waiting.group("names").split(", ")
            continue
        stopped = _STOPPED.match(line.strip())
        if stopped is not None and stopped.group("name") in names:
            names.remove(stopped.group("name"))
    return ", ".join(names) or None


def _kill_tree(pid: int) -> None:
    # supervisord starts each process in a process group of its own, so a signal to
    # supervisord's group would miss them: collect the descendants first, then kill them all.
    try:
        parent = psutil.Process(pid)
        victims = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
