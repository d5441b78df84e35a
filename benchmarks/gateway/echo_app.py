"""A bare FastAPI app answering a JSON body with a small JSON object: the round-trip floor."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> JSONResponse:
    """Parse the JSON body and answer with its key count, as a scoring endpoint would answer."""
    body: dict[str, Any] = await request.json()
    return JSONResponse({"keys": len(body), "risk_score": 0.5})


@app.get("/health")
async def health() -> dict[str, str]:
    """Readiness of the echo server."""
    return {"status": "ok"}
