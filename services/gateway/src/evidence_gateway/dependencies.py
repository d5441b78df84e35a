"""FastAPI dependencies that hand out the objects the lifespan created.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool,
which costs a thread hand-off per dependency on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from evidence_gateway.config import Settings
from evidence_gateway.pipeline import ScoringPipeline
from evidence_gateway.readiness import ReadinessProbe

__all__ = ["PipelineDep", "ReadinessDep", "SettingsDep"]


async def _pipeline(request: Request) -> ScoringPipeline:
    pipeline: ScoringPipeline = request.app.state.pipeline
    return pipeline


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _readiness(request: Request) -> ReadinessProbe:
    probe: ReadinessProbe = request.app.state.readiness
    return probe


PipelineDep = Annotated[ScoringPipeline, Depends(_pipeline)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ReadinessDep = Annotated[ReadinessProbe, Depends(_readiness)]
