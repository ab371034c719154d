"""The one exception family the CLI turns into a single line on stderr."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DDBenchError(Exception):
    """A user-facing error: the message says what was wrong and what is allowed."""


class UnknownNameError(DDBenchError, KeyError):
    """A dataset, model or distiller name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        hint = difflib.get_close_matches(name, known, n=1)
        msg = f"unknown {kind} {name!r}"
        if hint:
            msg += f"; did you mean {hint[0]!r}?"
        msg += f" (known: {', '.join(known) or 'none'})"
        super().__init__(msg)
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ConfigError(DDBenchError, ValueError):
    """A bad configuration value (names the field, the value and what is allowed)."""


def require_ints(config: object, names: Iterable[str], minimum: int = 1) -> None:
    """Each named field of ``config`` is an integer (a bool is not) >= ``minimum``; else one
    :class:`ConfigError` that names the field, its value and what is allowed."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name}={value!r} is not allowed: use an integer >= {minimum}")


class DataError(DDBenchError):
    """Missing, corrupt or incompatible data (datasets, synthetic sets, buffers)."""


class ServiceError(DDBenchError):
    """A service dd-bench needs (an MLflow tracking server) does not answer."""
