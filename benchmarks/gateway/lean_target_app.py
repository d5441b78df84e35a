"""A small uvicorn app that the lean load client's tests send requests to."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request

app = FastAPI()
received: list[dict[str, Any]] = []


@app.post("/score")
async def score(request: Request) -> dict[str, Any]:
    """Store the decoded body and respond with a model version, as the gateway does."""
    received.append(await request.json())
    return {"model_version": "REGISTRY_TEST", "risk_score": 0.25}


@app.post("/slow")
async def slow() -> dict[str, str]:
    """Respond after 5 s, later than the timeout the tests give the client."""
    await asyncio.sleep(5)
    return {"status": "late"}


@app.get("/received")
async def received_bodies() -> list[dict[str, Any]]:
    """Return the bodies that /score decoded, in arrival order."""
    return received


@app.get("/health")
async def health() -> dict[str, str]:
    """Readiness."""
    return {"status": "ok"}
