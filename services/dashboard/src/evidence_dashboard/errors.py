"""Exceptions raised by the dashboard's data access.

Every error the package raises on purpose derives from one base::

    DashboardError
    ├── StoreUnavailableError    the prediction store cannot be opened or queried
    └── ArtifactStatsError       the model artifact's metadata.json is missing or unusable

Panels catch these and show their message in place of the panel, so one broken source never
blanks the whole page.
"""

from __future__ import annotations

__all__ = ["ArtifactStatsError", "DashboardError", "StoreUnavailableError"]


class DashboardError(Exception):
    """Base of every error raised by ``evidence_dashboard``."""


class StoreUnavailableError(DashboardError):
    """The prediction store cannot be opened or a panel query failed."""


class ArtifactStatsError(DashboardError):
    """The model artifact has no usable ``feature_stats`` for drift."""
