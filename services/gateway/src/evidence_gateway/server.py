"""``evidence-gateway``: run the app under uvicorn with the ``GATEWAY_*`` settings."""

from __future__ import annotations

import uvicorn

from evidence_gateway.config import get_settings

__all__ = ["main"]

# Above httpx's default keep-alive expiry (5 s) so a client never reuses a socket the server
# is closing at the same moment.
_KEEP_ALIVE_SECONDS = 15


def main() -> None:
    """Serve ``create_app()`` on ``GATEWAY_HOST:GATEWAY_PORT`` with ``GATEWAY_WORKERS`` workers.

    Each worker builds its own app from the environment. With several workers, set
    ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory so ``/metrics`` covers all of them.
    """
    settings = get_settings()
    uvicorn.run(
        "evidence_gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
    )
