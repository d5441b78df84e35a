"""Fixtures: a real local model server process and the gateway app served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from evidence_gateway.app import create_app
from evidence_gateway.config import Settings
from evidence_gateway.testing import ServerProcess, free_port, script_path
from evidence_model_client.config import ClientSettings
from fastapi import FastAPI

SMOKE_MIB = '<?xml version="1.0"?><Response><ResponseData>CODE1</ResponseData></Response>'
SMOKE_RX = (
    '<?xml version="1.0"?><IntelRXResponse><DrugFill><DrugGenericName>METFORMIN'
    "</DrugGenericName></DrugFill></IntelRXResponse>"
)


@pytest.fixture
def smoke_pair() -> tuple[str, str]:
    """The MIB and Rx documents of the SQL smoke test TEST-001."""
    return SMOKE_MIB, SMOKE_RX


def builtin_model_server(directory: Path, port: int, **env: str) -> ServerProcess:
    """A model server process (not started) with no artifact, serving the built-in function.

    ``env`` adds or replaces ``MODEL_SERVER_*`` variables. Its log is ``model-server.log`` in
    ``directory``.
    """
    return ServerProcess(
        [script_path("evidence-model-server")],
        ready_url=f"http://127.0.0.1:{port}/health",
        env={
            "MODEL_SERVER_PORT": str(port),
            "MODEL_SERVER_ARTIFACT_DIR": str(directory / "empty-model"),
            "MODEL_SERVER_LOG_LEVEL": "warning",
            **env,
        },
        log_path=directory / "model-server.log",
        timeout=120.0,
    )


@pytest.fixture(scope="session")
def model_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local model server with no artifact, serving the built-in scoring function."""
    port = free_port()
    with builtin_model_server(tmp_path_factory.mktemp("model-server"), port):
        yield f"http://127.0.0.1:{port}"


def client_settings(base_url: str, **overrides: Any) -> ClientSettings:
    """Model client settings pointing at ``base_url`` with no reason profile."""
    values: dict[str, Any] = {
        "base_url": base_url,
        "reason_profile_dir": None,
        "deadline_ms": 2000.0,
        **overrides,
    }
    return ClientSettings(**values)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build gateway settings whose queue lives under the test's tmp_path."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "queue_path": tmp_path / "queue.sqlite3",
            "extraction_workers": 2,
            "local_mode": True,
            **overrides,
        }
        return Settings(**values)

    return build


class InProcessGateway:
    """The real app with its lifespan entered, reached through httpx's ASGI transport."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client


async def open_gateway(
    settings: Settings, model_settings: ClientSettings
) -> tuple[FastAPI, Any, httpx.AsyncClient]:
    """Create the app, enter its lifespan and return it with a client."""
    app = create_app(settings, model_client_settings=model_settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    )
    return app, lifespan, client


@pytest.fixture
async def gateway_factory(
    model_server_url: str,
) -> AsyncIterator[Callable[..., Any]]:
    """Open in-process gateways on demand; all are closed at the end of the test."""
    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def build(
        settings: Settings, *, model_url: str | None = None, **model_overrides: Any
    ) -> InProcessGateway:
        model_settings = client_settings(model_url or model_server_url, **model_overrides)
        app, lifespan, client = await open_gateway(settings, model_settings)
        opened.append((lifespan, client))
        return InProcessGateway(app, client)

    yield build
    for lifespan, client in reversed(opened):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def gateway(
    gateway_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> InProcessGateway:
    """A gateway with default limits, talking to the built-in model server."""
    built: InProcessGateway = await gateway_factory(make_settings())
    return built
