"""JSON request bodies: checked headers, gzip, orjson, and off the event loop when large.

FastAPI decodes a declared body with ``json.loads`` on the event loop. For a batch of large
documents (10 MB and more) that stalls every other request, health probes included, for about
100 ms. ``JSONBodyRoute`` keeps FastAPI's body handling (error shapes, OpenAPI document) and
swaps the decoder. It also applies the Content-Type and Content-Encoding rules of
``body_encoding`` first, so that every route that takes a JSON body accepts the same bodies.
``parse_json_body`` serves routes that read the body themselves and raises the errors FastAPI
raises for the others.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from evidence_gateway.body_encoding import (
    check_content_type,
    decompress_gzip,
    request_content_coding,
)
from evidence_gateway.limits import charge_decoded_body

__all__ = [
    "THREAD_DECODE_MIN_BYTES",
    "JSONBodyRequest",
    "JSONBodyRoute",
    "decode_json",
    "openapi_json_body",
    "parse_json_body",
]

ModelT = TypeVar("ModelT", bound=BaseModel)

# Bodies from this size on are decoded in a worker thread. orjson decoded the 53 KB sample body
# in 25 µs on the development VM, so a smaller body blocks the loop for well under 1 ms.
THREAD_DECODE_MIN_BYTES = 1_000_000


def decode_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body with orjson, falling back to ``json.loads`` where orjson rejects it.

    A leading UTF-8 byte order mark is dropped, as RFC 8259 allows. orjson rejects some bodies
    that the standard library accepts: lone surrogates from ``\\ud800``-style escapes, ``NaN``
    and ``Infinity``, and nesting deeper than 1024 levels. The fallback keeps FastAPI's
    behaviour for those bodies, and its exceptions (``JSONDecodeError``,
    ``UnicodeDecodeError``, ``RecursionError``) are the ones FastAPI turns into error
    responses. The fallback decodes the bytes as strict UTF-8 first, because ``json.loads``
    given bytes would also accept UTF-16 and UTF-32 and encoded surrogates.

    NOTE: orjson 3.13 decodes an integer literal beyond 64 bits as a float, where ``json.loads``
    returns an int. No field of the gateway's bodies accepts such an integer, and the
    service-function row-number check rejects the float as out of range.
    """
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body.decode("utf-8"))


class JSONBodyRequest(Request):
    """A request whose body is gunzipped when it is gzip and whose ``json()`` uses orjson."""

    async def body(self) -> bytes:
        """Read the body once and decompress it when ``Content-Encoding`` is gzip.

        Raises:
            BodyTooLargeError: the decompressed body is larger than GATEWAY_MAX_BODY_BYTES.
            InflightBodiesFullError: the decompressed body would pass
                GATEWAY_MAX_INFLIGHT_BODY_BYTES.
            HTTPException: 400 for invalid gzip data, 415 for an unsupported coding.
        """
        if not hasattr(self, "_decoded_body"):
            raw = await super().body()
            if request_content_coding(self.headers) == "gzip":
                max_bytes: int = self.app.state.settings.max_body_bytes
                # Inflating a 15 MB batch (800 KB of gzip) took 57-86 ms on the 2-vCPU
                # development VM, so it never runs on the event loop.
                self._decoded_body = await asyncio.to_thread(
                    decompress_gzip, raw, max_bytes=max_bytes
                )
                charge_decoded_body(self.scope, len(self._decoded_body))
            else:
                self._decoded_body = raw
        return self._decoded_body

    async def json(self) -> Any:
        """Decode the body once and cache it, as Starlette's ``Request.json`` does."""
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) >= THREAD_DECODE_MIN_BYTES:
                self._json = await asyncio.to_thread(decode_json, body)
            else:
                self._json = decode_json(body)
        return self._json


class JSONBodyRoute(APIRoute):
    """An ``APIRoute`` that checks the body headers and hands its endpoint a ``JSONBodyRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the header checks and the ``JSONBodyRequest`` decoder.

        The checks run before FastAPI reads the body. Without them FastAPI would validate a
        body of another media type as raw bytes and respond with 422 instead of 415.
        """
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            check_content_type(request.headers)
            request_content_coding(request.headers)
            return await handler(JSONBodyRequest(request.scope, request.receive))

        return handle


async def parse_json_body(request: Request, model: type[ModelT]) -> ModelT:
    """Decode the body as ``decode_json`` does and validate it as ``model``.

    The decoding errors are turned into the exceptions FastAPI raises for a declared body, so
    these routes respond to an undecodable body exactly as the others do.

    Raises:
        RequestValidationError: the body is not valid JSON or does not match ``model``; the
            errors carry ``loc`` paths under ``body`` like FastAPI's own.
        HTTPException: 400 chained to the ``UnicodeDecodeError``, ``RecursionError`` or other
            ``ValueError`` that decoding raised, which ``handlers`` turns into a 422.
    """
    if not isinstance(request, JSONBodyRequest):
        request = JSONBodyRequest(request.scope, request.receive)
    try:
        payload = await request.json()
    except json.JSONDecodeError as exc:
        issue = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
        raise RequestValidationError([issue]) from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
    except ValueError as exc:
        # json.loads raises a plain ValueError for an integer literal longer than Python's
        # int_max_str_digits (4,300 by default), which orjson hands to it as too large.
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
    try:
        return model.model_validate(payload)
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
