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
from collections.abc import Sequence
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
    "parse_event",
    "read_procfile",
    "render_config",
]

START_SECONDS = 5
"""A process that exits sooner than this after its start counts as a failed start."""
START_RETRIES = 3
"""Failed starts in a row after which supervisord gives up and leaves the process down."""
STOP_WAIT_SECONDS = 10
"""Time between SIGTERM and SIGKILL when the stack stops a process."""

# supervisord starts lower priorities first and stops higher ones first, one at a time. The
# gateway stops before the worker, so the worker's stop drain writes every record the gateway
# accepted, and the model server stops last, so requests still in flight get the model's score
# rather than the fallback. Processes not named here get supervisord's default of 999.
_PRIORITIES = {"model": 100, "worker": 200, "gateway": 300, "dashboard": 400}

# supervisord's log lines about process state, such as
# "2026-12-05 01:40:02,113 INFO exited: model (terminated by SIGTERM; not expected)".
_EVENT = re.compile(r"^\S+ \S+ \w+ (?P<kind>spawned|success|exited|gave up): (?P<text>.*)$")
_PROCESS_NAME = re.compile(r"^'?(?P<name>[\w-]+)'?")


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
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
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
            str(Path(sys.executable).parent / "supervisord"),
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

    def stop(self, timeout: float = STOP_WAIT_SECONDS + 10.0) -> None:
        """Ask supervisord to stop its processes; kill them all if it does not in time."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(process.pid)
                process.wait(timeout=5.0)
        if self._output is not None:
            self._output.close()
            self._output = None


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
