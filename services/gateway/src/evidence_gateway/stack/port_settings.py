"""Ports of the local stack from the variables that its processes read themselves."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StackPortSettings"]


class StackPortSettings(BaseSettings):
    """Ports that ``evidence-stack`` gives its processes when no port option is passed.

    Each field reads the variable that its service reads (``GATEWAY_PORT``,
    ``MODEL_SERVER_PORT``, ``DASHBOARD_PORT``). The services accept 0 for any free port, but
    the stack must know each port to probe it, so the range here starts at 1. An empty value
    is invalid, as in the services' own settings classes, which do not ignore empty variables.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    gateway_port: int = Field(default=8000, ge=1, le=65535, validation_alias="GATEWAY_PORT")
    model_port: int = Field(default=5000, ge=1, le=65535, validation_alias="MODEL_SERVER_PORT")
    dashboard_port: int = Field(default=8501, ge=1, le=65535, validation_alias="DASHBOARD_PORT")
