"""Validation of several settings classes at once, for the gateway's command lines."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping

from evidence_logging import SettingsFailure, exit_on_invalid_settings
from pydantic import ValidationError
from pydantic_settings import BaseSettings

__all__ = ["check_settings", "environment_replaced"]


def check_settings(
    loaders: Mapping[type[BaseSettings], Callable[[], object]],
    environ: Mapping[str, str] | None = None,
) -> None:
    """Call every loader, then exit with status 2 when any raised a validation error.

    Every loader runs before the exit, so the message lists the invalid variables of all the
    classes, not only of the first one that fails.

    Args:
        loaders: Each settings class with the function that builds it, such as the class
            itself or its cached getter.
        environ: The environment the loaders read; ``os.environ`` when omitted.
    """
    failures: list[SettingsFailure] = []
    for settings_class, load in loaders.items():
        try:
            load()
        except ValidationError as exc:
            failures.append((exc, settings_class))
    if failures:
        exit_on_invalid_settings(failures, environ)


@contextlib.contextmanager
def environment_replaced(environment: Mapping[str, str]) -> Iterator[None]:
    """Make ``os.environ`` equal to ``environment`` until the block ends, then restore it.

    pydantic-settings reads only ``os.environ``, so this is how a settings class reads the
    environment of a child process. Other threads see the change too: use it only while the
    process runs no other thread that reads the environment.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
