"""FastAPI dependencies that hand out the objects the lifespan created."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from evidence_gateway.config import Settings
from evidence_gateway.pipeline import ScoringPipeline
from evidence_gateway.readiness import ReadinessProbe

__all__ = ["PipelineDep", "ReadinessDep", "SettingsDep"]


def _pipeline(request: Request) -> ScoringPipeline:
    pipeline: ScoringPipeline = request.app.state.pipeline
    return pipeline


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _readiness(request: Request) -> ReadinessProbe:
    probe: ReadinessProbe = request.app.state.readiness
    return probe


PipelineDep = Annotated[ScoringPipeline, Depends(_pipeline)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ReadinessDep = Annotated[ReadinessProbe, Depends(_readiness)]
