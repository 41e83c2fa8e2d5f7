"""Settings from environment variables, parsed the same way in every service.

Every helper takes the variable's name as a literal (tests/lint/test_settings_reference.py finds the
names that way and compares them with each service's .env.example) and names it in its error.
An empty value counts as unset: a `NAME=` line copied from .env.example means "use the default".
`environ` defaults to os.environ; a service passes its own mapping to read a test's environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
T = TypeVar("T")


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take; the message names the variable."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def env_str(name: str, default: T, environ: Mapping[str, str] | None = None) -> str | T:
    """The value, stripped; `default` (a string, or None for an optional setting) when unset."""
    raw = _raw(name, environ)
    return default if raw is None else raw


def env_int(name: str, default: T, environ: Mapping[str, str] | None = None) -> int | T:
    raw = _raw(name, environ)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: T, environ: Mapping[str, str] | None = None) -> float | T:
    raw = _raw(name, environ)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number, got {raw!r}") from None


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """true/false (also 1/0, yes/no, on/off); anything else is refused rather than read as false."""
    raw = _raw(name, environ)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")


def env_list(name: str, default: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """A comma-separated list (`default` is written the same way); blank items are dropped."""
    raw = env_str(name, default, environ)
    return [item.strip() for item in raw.split(",") if item.strip()]
