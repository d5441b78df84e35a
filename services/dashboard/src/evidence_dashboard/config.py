"""Settings of the monitoring dashboard, read from ``DASHBOARD_*`` environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MAX_PORT", "MIN_PORT", "Settings", "get_settings"]

# Range of TCP ports the dashboard binds. Port 0 is excluded because the OS would then pick a
# free port, and the dashboard's address would be unknown.
MIN_PORT = 1
MAX_PORT = 65535

# A bearer token as RFC 6750 defines it (b64token), the only form that can follow "Bearer " in
# an Authorization header. The gateway accepts GATEWAY_API_TOKEN only in this form.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*", re.ASCII)


class Settings(BaseSettings):
    """Data sources, gateway address and server address of the dashboard."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARD_", extra="ignore")

    backend: Literal["sqlite", "snowflake"] = Field(
        default="sqlite",
        description=(
            "Data source: 'sqlite' reads store_path and calls the gateway over HTTP; "
            "'snowflake' uses the active Snowpark session of Streamlit in Snowflake."
        ),
    )
    store_path: Path = Field(
        default=Path("var/store.sqlite3"), description="SQLite sink written by the worker."
    )
    queue_path: Path = Field(
        default=Path("var/queue.sqlite3"), description="Durable queue file of the gateway."
    )
    artifact_dir: Path = Field(
        default=Path("var/model"), description="Model artifact directory with metadata.json."
    )
    gateway_url: HttpUrl = Field(
        default=HttpUrl("http://127.0.0.1:8000"), description="Base URL of the gateway."
    )
    gateway_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="Timeout of each call to the gateway, in seconds."
    )
    gateway_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token the test form sends to the gateway's /v1/predict: the gateway's "
            "GATEWAY_API_TOKEN. Unset, empty or blank sends no token, which only a gateway "
            "without GATEWAY_API_TOKEN (local mode) accepts."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address the Streamlit server binds.")
    port: int = Field(
        default=8501, ge=MIN_PORT, le=MAX_PORT, description="Port the Streamlit server binds."
    )
    max_rows: int = Field(
        default=200_000,
        ge=100,
        description="Max rows one panel query reads, newest first. The panel notes a cut.",
    )
    drift_max_rows: int = Field(
        default=20_000,
        ge=100,
        description=(
            "Max newest predictions in the window whose features the drift panel reads. "
            "Sampling noise alone gives an expected PSI of about (bins - 1) / rows, which is "
            "0.0005 for 10 bins and 20,000 rows."
        ),
    )
    database: str | None = Field(
        default="REALTIME_ML_PIPELINE",
        description=(
            "Snowflake database holding the FEATURE_STORE and ML_MODELS schemas, as "
            "database_name in deploy/snowflake.yml names it. Set it to an empty value to use "
            "the session's current database, which is the app's own in Streamlit in Snowflake."
        ),
    )
    gateway_service: str = Field(
        default="ML_MODELS.INFERENCE_SERVICE",
        description="Schema-qualified SPCS service whose status the Snowflake backend shows.",
    )
    predict_function: str = Field(
        default="ML_MODELS.FN_API_PREDICT",
        description="Schema-qualified service function the test form calls in Snowflake.",
    )

    @field_validator("gateway_token", mode="after")
    @classmethod
    def _check_gateway_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        # Blank counts as unset, as for the gateway's GATEWAY_API_TOKEN, so that compose can
        # pass an empty value when the gateway runs without a token.
        if not token.strip():
            return None
        # The message must not quote the token, because it reaches the page and the launcher.
        if _BEARER_TOKEN.fullmatch(token) is None:
            msg = (
                "DASHBOARD_GATEWAY_TOKEN contains characters that cannot be sent in a bearer "
                "token, so the gateway could never accept it; set it to the gateway's "
                "GATEWAY_API_TOKEN, which uses only A-Z a-z 0-9 - . _ ~ + / and trailing ="
            )
            raise ValueError(msg)
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process from the environment."""
    return Settings()
