"""Invalid settings as a short message for a command line, without pydantic's traceback.

Each service reads its settings from environment variables through a pydantic-settings class,
and an invalid value raises ``pydantic.ValidationError``. Its traceback buries the field's name
and gives it without the prefix, so the message here lists each variable with its prefix, the
rejected value and pydantic's reason, then the fix. Settings are not health data,
so values are printed, except those of secret fields (``SecretStr``).

pydantic is imported for type checking only. evidence-logging does not depend on it, and the
services that call these functions pass in their own pydantic errors and settings classes.
"""

from __future__ import annotations

import os
import re
import sys
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic.fields import FieldInfo
    from pydantic_settings import BaseSettings

__all__ = [
    "HIDDEN_VALUE",
    "INVALID_SETTINGS_EXIT_STATUS",
    "SettingsFailure",
    "describe_invalid_settings",
    "exit_on_invalid_settings",
    "hide_url_credentials",
]

INVALID_SETTINGS_EXIT_STATUS = 2
"""Exit status of a command whose settings are invalid: the usual status of a usage error."""
HIDDEN_VALUE = "(hidden)"
"""Printed in place of the value of a secret field."""
_MAX_VALUE_CHARS = 200

SettingsFailure: TypeAlias = "tuple[ValidationError, type[BaseSettings]]"
"""A validation error and the settings class whose construction raised it."""


@dataclass
class _Variable:
    """The errors of one environment variable."""

    name: str
    value: str | None
    reasons: list[str] = field(default_factory=list)


def _is_secret(annotation: Any) -> bool:
    # pydantic's SecretStr and SecretBytes, and any Secret[T], have get_secret_value. The
    # annotation may wrap them in Optional or Annotated, so its arguments are searched too.
    if isinstance(annotation, type) and hasattr(annotation, "get_secret_value"):
        return True
    return any(_is_secret(argument) for argument in typing.get_args(annotation))


def _variable_names(name: str, info: FieldInfo, prefix: str) -> list[str]:
    """Return the environment variables that pydantic-settings reads for one field, in order."""
    alias = info.validation_alias
    if isinstance(alias, str):
        return [alias.upper()]
    choices = getattr(alias, "choices", None)
    if choices:
        names = [choice.upper() for choice in choices if isinstance(choice, str)]
        if names:
            return names
    if info.alias:
        return [info.alias.upper()]
    return [f"{prefix}{name}".upper()]


class _FieldTable:
    """The variable names and secrecy of every field of one settings class."""

    def __init__(self, settings_class: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.prefix = str(settings_class.model_config.get("env_prefix") or "").upper()
        # NOTE: names are compared in upper case, as pydantic-settings does unless a class sets
        # case_sensitive. No service's settings class sets it, and this code ignores it.
        self.environ = {key.upper(): value for key, value in environ.items()}
        self.names: dict[str, list[str]] = {}
        self.secret: dict[str, bool] = {}
        self.secret_values: set[str] = set()
        for field_name, info in settings_class.model_fields.items():
            names = _variable_names(field_name, info, self.prefix)
            secret = _is_secret(info.annotation)
            # An error's location is the field's name or, for a field with an alias, the alias.
            for key in {field_name.upper(), *names}:
                self.names[key] = names
                self.secret[key] = secret
            if secret:
                self.secret_values.update(
                    self.environ[name] for name in names if self.environ.get(name)
                )

    def variable(self, key: str) -> str:
        """Return the variable that set the field at ``key``: the first one set, or the first."""
        names = self.names.get(key.upper(), [f"{self.prefix}{key}".upper()])
        return next((name for name in names if name in self.environ), names[0])

    def is_secret(self, key: str) -> bool:
        """Return True when a field's values must not be printed, as for an unknown field."""
        return self.secret.get(key.upper(), True)

    def scrub(self, text: str) -> str:
        """Hide ``text`` whole if it contains a secret value, and any password in a URL.

        A validator may quote a secret in its message. Replacing only the secret inside the
        text would show its length and position, and all of a short secret such as "0".
        """
        if any(value in text for value in self.secret_values):
            return HIDDEN_VALUE
        return hide_url_credentials(text)


# The user-information part of a URL, "user:password@" after the scheme: settings such as a
# base URL are not secret fields but may carry credentials.
_URL_USERINFO = re.compile(r"(://)[^/@\s]*@")


def hide_url_credentials(text: str) -> str:
    """Return ``text`` with the ``user:password@`` part of every URL in it hidden."""
    return _URL_USERINFO.sub(r"\1" + HIDDEN_VALUE + "@", text)


def _show_value(value: object) -> str:
    # A string, as every environment variable is, shows in quotes so that blanks are visible.
    # Other values come from keyword arguments and show as their repr.
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[:_MAX_VALUE_CHARS] + "…"
    return repr(text) if isinstance(value, str) else text


def _collect(
    error: ValidationError, table: _FieldTable, variables: dict[str, _Variable], notes: list[str]
) -> None:
    """Add the errors of one settings class to ``variables`` and the field-less ones to ``notes``.

    A field-less error comes from a model validator that checks several fields together.
    """
    for detail in error.errors(include_url=False):
        location = detail["loc"]
        reason = table.scrub(detail["msg"].removeprefix("Value error, "))
        if not location:
            # The input of a model-level error is every value, secret ones included.
            notes.append(reason)
            continue
        key = str(location[0])
        name = table.variable(key)
        if detail["type"] == "missing":
            value = None
        elif table.is_secret(key):
            value = HIDDEN_VALUE
        else:
            value = table.scrub(_show_value(detail["input"]))
        entry = variables.setdefault(name, _Variable(name, value))
        entry.reasons.append(reason)


def describe_invalid_settings(
    failures: Iterable[SettingsFailure], environ: Mapping[str, str] | None = None
) -> str:
    """Describe invalid settings: one line per variable or rule, then how to fix them.

    Args:
        failures: Each ``ValidationError`` with the settings class that raised it.
        environ: The environment the settings were read from; ``os.environ`` when omitted.
            The message names the variable that was set among a field's alternative names, and
            leaves out the secret values found there.
    """
    variables: dict[str, _Variable] = {}
    notes: list[str] = []
    for error, settings_class in failures:
        table = _FieldTable(settings_class, os.environ if environ is None else environ)
        _collect(error, table, variables, notes)

    lines = []
    for entry in variables.values():
        reasons = "; ".join(dict.fromkeys(entry.reasons))
        if entry.value is None:
            lines.append(f"  {entry.name} is not set: {reasons}")
        else:
            lines.append(f"  {entry.name}={entry.value}: {reasons}")
    lines.extend(f"  {note}" for note in notes)

    count = len(lines)
    header = (
        "error: invalid setting in the environment:"
        if count == 1
        else f"error: {count} invalid settings in the environment:"
    )
    fix = _describe_fix(
        [entry.name for entry in variables.values() if entry.value is not None],
        [entry.name for entry in variables.values() if entry.value is None],
    )
    # A model-level rule (a note) names in its own message the variables to change.
    return "\n".join([header, *lines, *fix])


def _describe_fix(invalid: list[str], missing: list[str]) -> list[str]:
    steps = []
    if len(invalid) == 1:
        steps.append(f"set {invalid[0]} to a valid value or unset it to use the default")
    elif invalid:
        steps.append(
            "set each variable shown with a value to a valid one or unset it to use its default"
        )
    if len(missing) == 1:
        steps.append(f"set {missing[0]}")
    elif missing:
        steps.append("set each variable that is not set")
    if not steps:
        return []
    return [f"To fix: {', and '.join(steps)}."]


def exit_on_invalid_settings(
    failures: Iterable[SettingsFailure], environ: Mapping[str, str] | None = None
) -> NoReturn:
    """Print ``describe_invalid_settings`` to stderr and exit with status 2, without a traceback."""
    print(describe_invalid_settings(failures, environ), file=sys.stderr)
    raise SystemExit(INVALID_SETTINGS_EXIT_STATUS)
