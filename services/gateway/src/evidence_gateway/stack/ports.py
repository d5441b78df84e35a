"""Port checks of the local stack: free before start, owned by the stack's processes after."""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection
from dataclasses import dataclass

import psutil

from evidence_gateway.stack.processes import StackError

__all__ = ["StackPort", "check_ports_free", "check_ports_owned", "listener_pids"]


@dataclass(frozen=True, slots=True)
class StackPort:
    """A TCP port that one process of the stack binds on 127.0.0.1.

    ``role`` names the process (``gateway``), and ``option`` the ``evidence-stack`` option and
    environment variable that choose another port.
    """

    role: str
    port: int
    option: str


def _bind_error(host: str, port: int) -> OSError | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # uvicorn and Streamlit set SO_REUSEADDR as well, so a port whose old connections
        # linger in TIME_WAIT counts as free, and only a listening socket blocks it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def check_ports_free(ports: Collection[StackPort], host: str = "127.0.0.1") -> None:
    """Check that every port can be bound on ``host`` now, before any process starts.

    Raises:
        StackError: a port is taken, two roles share a port, or a port cannot be bound. The
            message has one line per such port, naming it, its role and the option that
            changes it.
    """
    problems = []
    seen: dict[int, str] = {}
    for entry in ports:
        if entry.port in seen:
            problems.append(
                f"port {entry.port} is chosen for both the {seen[entry.port]} and the "
                f"{entry.role}; pass another port with {entry.option}"
            )
            continue
        seen[entry.port] = entry.role
        error = _bind_error(host, entry.port)
        if error is None:
            continue
        if error.errno == errno.EADDRINUSE:
            reason = "is already in use, probably by another stack or server"
        else:
            reason = f"cannot be bound ({error.strerror or error.__class__.__name__})"
        problems.append(
            f"port {entry.port} of the {entry.role} on {host} {reason}; "
            f"stop that process or choose another port with {entry.option}"
        )
    if problems:
        # One line per port, so that several problems do not run together.
        raise StackError("\n".join(problems))


def listener_pids(port: int) -> set[int]:
    """Return the ids of the processes that listen on TCP ``port`` on any address.

    On Linux, psutil can read the owner of another user's socket only when running as root. A
    listener it may not inspect is left out.
    """
    pids = set()
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status != psutil.CONN_LISTEN or not connection.laddr:
            continue
        if connection.laddr.port == port and connection.pid is not None:
            pids.add(connection.pid)
    return pids


def check_ports_owned(ports: Collection[StackPort], own_pids: Collection[int]) -> None:
    """Check that each port is served by one of ``own_pids``, so requests reach this stack.

    Raises:
        StackError: a port is served by a process outside ``own_pids``, or by none.
    """
    for entry in ports:
        listeners = listener_pids(entry.port)
        if listeners and listeners <= set(own_pids):
            continue
        msg = (
            f"port {entry.port} of the {entry.role} is served by another process "
            f"(pids {sorted(listeners) or 'unknown'}), not by this stack; stop it or choose "
            f"another port with {entry.option}. Nothing was sent to it"
        )
        raise StackError(msg)
