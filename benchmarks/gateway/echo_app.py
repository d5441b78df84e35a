"""A bare FastAPI app that returns a small JSON object for a JSON body: the round-trip floor."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> JSONResponse:
    """Parse the JSON body and return its key count, shaped like a small scoring response."""
    body: dict[str, Any] = await request.json()
    return JSONResponse({"keys": len(body), "risk_score": 0.5})


@app.get("/health")
async def health() -> dict[str, str]:
    """Readiness of the echo server."""
    return {"status": "ok"}
