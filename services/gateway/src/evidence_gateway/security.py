"""Bearer-token check for the ``/v1`` routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["require_api_token"]

_bearer = HTTPBearer(
    auto_error=False, description="GATEWAY_API_TOKEN; optional only with GATEWAY_LOCAL_MODE=true."
)


async def require_api_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Reject the request with 401 unless it carries the configured bearer token.

    Does nothing when ``GATEWAY_API_TOKEN`` is unset, which the settings allow only with
    ``GATEWAY_LOCAL_MODE=true``. The comparison takes the same time whatever prefix of the
    token matches.
    """
    expected = request.app.state.settings.api_token
    if expected is None:
        return
    supplied = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(
        supplied.encode("utf-8"), expected.get_secret_value().encode("utf-8")
    ):
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token; send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
