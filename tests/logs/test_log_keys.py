"""Every key that a log call passes by name is one its process's log filter lets through.

The filters of ``evidence_logging`` drop keys outside a service's ``ALLOWED_KEYS`` and report
them in ``dropped_keys``, so a new key that was not added there disappears from the output
without an error. This test reads each package's source and lists the keyword arguments of its
log calls (``_log.info("...", rows=3)``). Keys spread from a dict (``**describe_error(exc)``)
are not seen here; the services' own tests check those lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import evidence_dashboard.logs
import evidence_gateway.logs
import evidence_model_client.logs
import evidence_persistence._logging
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
_LOGGER_NAMES = frozenset({"_log", "log", "logger", "_logger"})

_MODEL_CLIENT = "services/model_client/src/evidence_model_client"
# Modules of the local model server's process; the rest of the package runs in the gateway's.
_MODEL_SERVER_MODULES = frozenset(
    {"server.py", "served_model.py", "lockstep.py", "lockstep_sklearn.py", "threads.py",
     "cli.py", "payloads.py", "inflight.py", "busy_log.py"}
)  # fmt: skip


def _model_client_files(server: bool) -> list[Path]:
    return [
        path
        for path in sorted((REPO_ROOT / _MODEL_CLIENT).glob("*.py"))
        if (path.name in _MODEL_SERVER_MODULES) == server
    ]


def _package_files(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


# Each process's files and the keys its log filter lets through. The gateway's process runs
# the model client too, so its filter must let the client's keys through as well.
_PROCESSES = {
    "gateway": (
        [*_package_files("services/gateway/src/evidence_gateway"), *_model_client_files(False)],
        evidence_gateway.logs.ALLOWED_KEYS,
    ),
    "model_server": (_model_client_files(True), evidence_model_client.logs.ALLOWED_KEYS),
    "persistence": (
        _package_files("services/persistence/src/evidence_persistence"),
        evidence_persistence._logging.ALLOWED_KEYS,
    ),
    "dashboard": (
        _package_files("services/dashboard/src/evidence_dashboard"),
        evidence_dashboard.logs.ALLOWED_KEYS,
    ),
}


def _is_log_call(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in _LEVELS:
        return isinstance(func.value, ast.Name) and func.value.id in _LOGGER_NAMES
    # A level chosen at run time: ``log = _log.debug if quiet else _log.info``.
    return isinstance(func, ast.Name) and func.id == "log"


def _logged_keys(paths: list[Path]) -> Iterator[tuple[str, int, str]]:
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_log_call(node):
                for keyword in node.keywords:
                    if keyword.arg is not None and keyword.arg != "exc_info":
                        yield str(path.relative_to(REPO_ROOT)), node.lineno, keyword.arg


@pytest.mark.parametrize("process", list(_PROCESSES))
def test_logged_keys_allowed(process: str) -> None:
    """No log call names a key that its process's filter would drop."""
    paths, allowed = _PROCESSES[process]
    found = list(_logged_keys(paths))

    assert found  # the scan found the process's log calls
    dropped = [f"{path}:{line} {key}" for path, line, key in found if key not in allowed]
    assert dropped == []
