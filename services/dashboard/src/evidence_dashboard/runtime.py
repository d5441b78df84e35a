"""Pick the data sources for where the app runs: a local SQLite store or Streamlit in Snowflake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from evidence_dashboard.config import Settings
from evidence_dashboard.errors import StoreUnavailableError
from evidence_dashboard.gateway import (
    GatewayReadiness,
    PredictionOutcome,
    fetch_readiness,
    submit_prediction,
)
from evidence_dashboard.queue_status import QueueStatus, read_queue_status
from evidence_dashboard.store.base import PredictionStore
from evidence_dashboard.store.sqlite import SqliteStore

__all__ = ["LocalServices", "Runtime", "ServiceMonitor", "active_snowpark_session", "build_runtime"]


class ServiceMonitor(Protocol):
    """Service state and the test prediction, wherever the gateway runs."""

    location: str

    def readiness(self) -> GatewayReadiness:
        """Return the gateway's readiness and circuit state."""
        ...

    def queue_status(self) -> QueueStatus | None:
        """Return the queue's backlog, or None where the queue file is not visible."""
        ...

    def predict(
        self, policy_number: str, mib_xml: str | None, rx_xml: str | None
    ) -> PredictionOutcome:
        """Score one evidence pair through the gateway."""
        ...


class LocalServices:
    """The gateway over HTTP and the queue file on this machine."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._base_url = str(settings.gateway_url)
        self.location = self._base_url.rstrip("/")

    def readiness(self) -> GatewayReadiness:
        """Call the gateway's readiness endpoint."""
        return fetch_readiness(self._base_url, timeout=self._settings.gateway_timeout_seconds)

    def queue_status(self) -> QueueStatus:
        """Read the queue file named by ``DASHBOARD_QUEUE_PATH``."""
        return read_queue_status(self._settings.queue_path)

    def predict(
        self, policy_number: str, mib_xml: str | None, rx_xml: str | None
    ) -> PredictionOutcome:
        """Post the pair to the gateway's ``/v1/predict`` with ``DASHBOARD_GATEWAY_TOKEN``."""
        return submit_prediction(
            self._base_url,
            policy_number=policy_number,
            mib_xml=mib_xml,
            rx_xml=rx_xml,
            timeout=self._settings.gateway_timeout_seconds,
            bearer_token=self._settings.gateway_token,
        )


@dataclass(frozen=True, slots=True)
class Runtime:
    """The store and service monitor one page render uses."""

    settings: Settings
    store: PredictionStore
    services: ServiceMonitor


def active_snowpark_session() -> Any | None:
    """Return the Snowpark session Streamlit in Snowflake provides, or None outside it."""
    try:
        from snowflake.snowpark.context import get_active_session
        from snowflake.snowpark.exceptions import SnowparkSessionException
    except ImportError:
        return None
    try:
        return get_active_session()
    except SnowparkSessionException:
        return None


def build_runtime(settings: Settings, *, session: Any | None = None) -> Runtime:
    """Build the sources ``settings.backend`` names.

    ``session`` is the Snowpark session for the ``snowflake`` backend; when omitted the active
    session of Streamlit in Snowflake is used.

    Raises:
        StoreUnavailableError: the ``snowflake`` backend is chosen but no session is active.
    """
    if settings.backend == "snowflake":
        snowpark_session = session if session is not None else active_snowpark_session()
        if snowpark_session is None:
            msg = (
                "DASHBOARD_BACKEND=snowflake but no Snowpark session is active; run the app in "
                "Streamlit in Snowflake or set DASHBOARD_BACKEND=sqlite"
            )
            raise StoreUnavailableError(msg)
        from evidence_dashboard.store.snowflake import SnowflakeServices, SnowflakeStore

        return Runtime(
            settings=settings,
            store=SnowflakeStore(snowpark_session, settings),
            services=SnowflakeServices(snowpark_session, settings),
        )
    return Runtime(
        settings=settings,
        store=SqliteStore(settings.store_path, max_rows=settings.max_rows),
        services=LocalServices(settings),
    )
