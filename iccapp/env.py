"""Strict, typed reading of the environment.

Every helper raises :class:`EnvError` naming the variable when its value cannot be used, so a bad
deployment stops at start-up instead of misbehaving later. Secrets may come from ``NAME_FILE``
(a mounted file) instead of ``NAME``; setting both is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvError(Exception):
    """A configuration value in the environment is invalid; the message names the variable."""


class Env:
    """Reads variables from a mapping (``os.environ`` by default) with strict conversions."""

    def __init__(self, source: Mapping[str, str] | None = None) -> None:
        self.source = os.environ if source is None else source
        self.used: dict[str, str] = {}

    def raw(self, name: str, *, secret: bool = False) -> str | None:
        """The value of ``name``, or of the file ``name_FILE`` names when ``secret``; None when unset."""
        value = self.source.get(name)
        file_var = f"{name}_FILE"
        file_path = self.source.get(file_var) if secret else None
        if value is not None and file_path:
            raise EnvError(f"{name}: set either {name} or {file_var}, not both")
        if file_path:
            try:
                content = Path(file_path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise EnvError(f"{file_var}: cannot read {file_path!r}: {exc.strerror or exc}") from exc
            if not content:
                raise EnvError(f"{file_var}: the file {file_path!r} is empty")
            self.used[name] = "file"
            return content
        if value is not None:
            self.used[name] = "env"
        return value

    def string(self, name: str, default: str = "", *, secret: bool = False, choices: tuple[str, ...] = ()) -> str:
        value = self.raw(name, secret=secret)
        if value is None:
            return default
        value = value.strip()
        if choices and value not in choices:
            raise EnvError(f"{name}: {value!r} is not one of {', '.join(choices)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise EnvError(f"{name}: {value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")

    def integer(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise EnvError(f"{name}: {value!r} is not an integer") from None
        if minimum is not None and number < minimum:
            raise EnvError(f"{name}: {number} is below the minimum {minimum}")
        if maximum is not None and number > maximum:
            raise EnvError(f"{name}: {number} is above the maximum {maximum}")
        return number

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value.strip())
        except ValueError:
            raise EnvError(f"{name}: {value!r} is not a number") from None
        if minimum is not None and number < minimum:
            raise EnvError(f"{name}: {number} is below the minimum {minimum}")
        return number

    def csv(self, name: str, default: list[str] | None = None, *, item: Callable[[str], T] | None = None) -> list[str]:
        """A comma-separated list; empty items are ignored."""
        value = self.raw(name)
        if value is None:
            return [*(default or [])]
        items = [part.strip() for part in value.split(",") if part.strip()]
        if item is not None:
            for part in items:
                try:
                    item(part)
                except (ValueError, EnvError) as exc:
                    raise EnvError(f"{name}: {part!r} is invalid: {exc}") from None
        return items

    def url(self, name: str, default: str = "", *, schemes: tuple[str, ...], secret: bool = True) -> str:
        """A URL whose scheme is one of ``schemes``; credentials make it a secret, so ``_FILE`` works."""
        value = self.string(name, default, secret=secret)
        if not value:
            return value
        check_url(name, value, schemes)
        return value


def check_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    """Raise EnvError unless ``value`` is a URL with one of ``schemes`` and, for network schemes, a host."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise EnvError(f"{name}: not a valid URL ({exc})") from None
    if parts.scheme not in schemes:
        raise EnvError(f"{name}: scheme {parts.scheme or '(none)'!r} is not one of {', '.join(schemes)}")
    if parts.scheme not in {"sqlite", "memory", "filesystem"} and not parts.hostname:
        raise EnvError(f"{name}: the URL has no host")


def origin(value: str) -> str:
    """Validate one CSRF trusted origin (scheme://host[:port])."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("an origin looks like https://icc.example.com")
    return value


def network(value: str) -> str:
    """A CIDR (``10.0.0.0/8``) or a single address; raises ValueError naming what is wrong."""
    import ipaddress

    ipaddress.ip_network(value, strict=False)
    return value
