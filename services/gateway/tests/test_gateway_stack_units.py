"""The local stack's layout, sample loading and CLI defaults."""

from __future__ import annotations

import inspect
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
import typer.main
from evidence_gateway.cli import stack as stack_cli
from evidence_gateway.cli.stack import app, dashboard_status, describe_rejection, run
from evidence_gateway.stack.layout import StackLayout
from evidence_gateway.stack.port_settings import StackPortSettings
from evidence_gateway.stack.samples import load_samples

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_layout_environment_wires_processes(tmp_path: Path) -> None:
    """Every process gets the same queue path and the ports of the others."""
    layout = StackLayout(
        root=tmp_path, var_dir=tmp_path / "var", gateway_port=1801, model_port=1502
    )

    env = layout.environment({"PATH": "/usr/bin", "MODEL_CLIENT_DEADLINE_MS": "75"})

    assert env["GATEWAY_QUEUE_PATH"] == env["PERSISTENCE_QUEUE_PATH"]
    assert env["PERSISTENCE_STORE_PATH"] == env["DASHBOARD_STORE_PATH"]
    assert env["GATEWAY_PORT"] == "1801"
    assert env["MODEL_SERVER_PORT"] == "1502"
    assert env["MODEL_CLIENT_BASE_URL"] == "http://127.0.0.1:1502"
    assert env["DASHBOARD_GATEWAY_URL"] == "http://127.0.0.1:1801"
    assert env["MODEL_CLIENT_DEADLINE_MS"] == "75"
    assert env["PATH"].endswith("/usr/bin")
    assert "PROMETHEUS_MULTIPROC_DIR" not in env


def test_layout_several_workers_share_metrics(tmp_path: Path) -> None:
    """With two gateway workers the gateway alone gets the metrics directory."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var", gateway_workers=2)

    env = layout.environment({"PROMETHEUS_MULTIPROC_DIR": "/elsewhere"})

    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert layout.gateway_environment() == {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "var" / "prometheus")
    }


def test_layout_one_worker_no_metrics_dir(tmp_path: Path) -> None:
    """One gateway worker needs no metrics directory."""
    layout = StackLayout(root=tmp_path, var_dir=tmp_path / "var", gateway_workers=1)

    assert layout.gateway_environment() == {}


def test_load_samples_smoke_first() -> None:
    """The bundled samples start with the two smoke applicants built from smoke/."""
    samples = load_samples(REPO_ROOT / "data" / "samples")

    assert [s.policy_number for s in samples[:2]] == ["TEST-001", "TEST-002"]
    assert samples[1].mib_xml == samples[1].rx_xml
    assert "smoke" not in [s.policy_number for s in samples]
    assert len(samples) >= 3


def test_stack_default_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without options or variables, evidence-stack uses the documented 8000, 5000 and 8501."""
    for name in ("GATEWAY_PORT", "MODEL_SERVER_PORT", "DASHBOARD_PORT"):
        monkeypatch.delenv(name, raising=False)
    parameters = inspect.signature(run).parameters
    ports = StackPortSettings()

    assert parameters["gateway_port"].default is None
    assert parameters["model_port"].default is None
    assert parameters["dashboard_port"].default is None
    assert ports.gateway_port == 8000
    assert ports.model_port == 5000
    assert ports.dashboard_port == 8501


def test_stack_train_rows_minimum_200() -> None:
    """--train-rows takes 200 but not 199, because hist-gbm cannot split a node on fewer.

    Only the arguments are parsed, so no test run can train a model or start the stack.
    """
    command = typer.main.get_command(app)

    with pytest.raises(typer.BadParameter, match="greater than or equal to 200"):
        command.make_context("evidence-stack", ["--train-rows", "199"])
    context = command.make_context("evidence-stack", ["--train-rows", "200"])

    assert context.params["train_rows"] == 200
    assert inspect.signature(run).parameters["train_rows"].default == 2000


@pytest.mark.parametrize(
    ("requested", "installed", "expected"),
    [
        (False, False, "skipped (--no-dashboard)"),
        (True, False, "not installed (skipped)"),
        (True, True, "http://127.0.0.1:18501"),
    ],
)
def test_dashboard_status_reason(requested: bool, installed: bool, expected: str) -> None:
    """The URL table names why the dashboard is missing: the option or the package."""
    layout = StackLayout(root=Path(), var_dir=Path("var"), dashboard_port=18501)

    assert dashboard_status(layout, requested=requested, installed=installed) == expected


def test_describe_rejection_queue_full() -> None:
    """A 503 on the sample batch names the status, the error and the queue setting."""
    response = httpx.Response(
        503,
        json={"error": {"type": "persistence_unavailable", "message": "queue full"}},
    )

    text = describe_rejection(response)

    assert "POST /functions/predict returned HTTP 503 persistence_unavailable" in text
    assert "(queue full)" in text
    assert "GATEWAY_QUEUE_MAX_DEPTH" in text


def test_describe_rejection_not_json() -> None:
    """A body that is not JSON still gives the status."""
    text = describe_rejection(httpx.Response(502, text="<html>bad gateway</html>"))

    assert "returned HTTP 502 unknown error" in text
    assert "GATEWAY_QUEUE_MAX_DEPTH" not in text


@pytest.fixture
def restored_signals() -> Iterator[None]:
    """Put back this process's SIGINT and SIGTERM handlers after the test."""
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in previous.items():
        signal.signal(number, handler)


@pytest.mark.usefixtures("restored_signals")
@pytest.mark.parametrize(
    ("signum", "raised"),
    [(signal.SIGTERM, stack_cli._Terminated), (signal.SIGINT, KeyboardInterrupt)],
)
def test_stack_interrupt_ignores_later_signals(signum: int, raised: type[BaseException]) -> None:
    """The first signal interrupts, and both signals are ignored from then on."""
    signal.signal(signal.SIGTERM, stack_cli._interrupt)
    signal.signal(signal.SIGINT, stack_cli._interrupt)

    with pytest.raises(raised):
        stack_cli._interrupt(signum, None)

    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.usefixtures("restored_signals")
def test_stack_interrupt_keeps_foreign_sigint() -> None:
    """A SIGINT handler that is not the stack's own stays in place."""
    signal.signal(signal.SIGINT, signal.default_int_handler)

    with pytest.raises(stack_cli._Terminated):
        stack_cli._interrupt(signal.SIGTERM, None)

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
