"""JSON request bodies parsed and validated in a worker thread instead of on the event loop.

FastAPI decodes a declared body with ``json.loads`` on the event loop. For a service-function
batch of large documents (10 MB and more) that stalls every other request, health probes
included, for about 100 ms, so those routes read the raw bytes and parse them here.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

__all__ = ["openapi_json_body", "parse_json_body"]

ModelT = TypeVar("ModelT", bound=BaseModel)


async def parse_json_body(request: Request, model: type[ModelT]) -> ModelT:
    """Read the body and validate it as ``model`` in a thread.

    Raises:
        RequestValidationError: the body is not valid JSON or does not match ``model``; the
            errors carry ``loc`` paths under ``body`` like FastAPI's own.
    """
    raw = await request.body()
    try:
        return await asyncio.to_thread(model.model_validate_json, raw)
    except ValidationError as exc:
        errors = [
            {"type": error["type"], "loc": ("body", *error["loc"]), "msg": error["msg"]}
            for error in exc.errors(include_input=False, include_context=False, include_url=False)
        ]
        raise RequestValidationError(errors) from None


def openapi_json_body(model: type[BaseModel]) -> dict[str, Any]:
    """Describe ``model`` as the route's required JSON request body in the OpenAPI document."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
