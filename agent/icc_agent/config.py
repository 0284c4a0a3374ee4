"""The agent's settings: constructor arguments first, then ``ICC_*`` environment variables, then defaults.

A bad environment value never stops the application: it is logged and the default is used (fail open). A bad
constructor argument is a programming error and raises ``ValueError``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger("icc_agent")

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 (a path, not a secret)
MAX_BATCH = 1000  # ICC accepts at most this many samples per request

RouteOf = Callable[[Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class Config:
    url: str = ""  # ICC's base URL; samples go to <url>/traffic/v1/samples. Empty: the agent does nothing.
    cluster: str = ""  # X-ICC-Cluster, with the ServiceAccount token
    token_file: str = SERVICE_ACCOUNT_TOKEN  # re-read when it changes (kubelet rotates it)
    api_token: str = ""  # an ICC API token instead of the token file (with ``application``)
    application: str = ""  # X-ICC-Application: the application's id in ICC
    sample_rate: float = 1.0  # fraction of requests sampled
    max_per_second: int = 100  # at most this many samples per second (per process)
    queue_size: int = 5000  # samples waiting to be sent; beyond it new ones are dropped and counted
    batch_size: int = 500  # samples per request to ICC
    flush_seconds: float = 5.0  # how often the queue is sent
    timeout_seconds: float = 2.0  # connect and read timeout toward ICC
    max_backoff_seconds: float = 60.0  # longest wait between attempts while ICC is unreachable
    hash_kib: int = 64  # only the first KiB of a body are hashed
    ca_file: str = ""  # a CA bundle to verify ICC's certificate (default: the system's)
    enabled: bool = True
    route_of: RouteOf | None = None  # scope or environ -> route template, when the framework gives none

    def headers(self) -> dict[str, str]:
        return {"X-ICC-Application": self.application} if self.application else {"X-ICC-Cluster": self.cluster}

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/traffic/v1/samples"


ENV = {
    "url": "ICC_URL",
    "cluster": "ICC_CLUSTER",
    "token_file": "ICC_TOKEN_FILE",
    "api_token": "ICC_API_TOKEN",
    "application": "ICC_APPLICATION",
    "sample_rate": "ICC_SAMPLE_RATE",
    "max_per_second": "ICC_MAX_SAMPLES_PER_SECOND",
    "queue_size": "ICC_QUEUE_SIZE",
    "batch_size": "ICC_BATCH_SIZE",
    "flush_seconds": "ICC_FLUSH_SECONDS",
    "timeout_seconds": "ICC_TIMEOUT_SECONDS",
    "max_backoff_seconds": "ICC_MAX_BACKOFF_SECONDS",
    "hash_kib": "ICC_HASH_KIB",
    "ca_file": "ICC_CA_FILE",
    "enabled": "ICC_AGENT_ENABLED",
}

# (lowest, highest) allowed for numbers
_BOUNDS: dict[str, tuple[float, float]] = {
    "sample_rate": (0.0, 1.0),
    "max_per_second": (0, 1_000_000),
    "queue_size": (1, 10_000_000),
    "batch_size": (1, MAX_BATCH),
    "flush_seconds": (0.01, 3600),
    "timeout_seconds": (0.01, 60),
    "max_backoff_seconds": (0.01, 3600),
    "hash_kib": (0, 1024 * 1024),
}


def _convert(name: str, kind: type, raw: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: {raw!r} is not true or false")
    if kind in (int, float):
        if isinstance(raw, bool):
            raise ValueError(f"{name}: {raw!r} is not a number")
        value = kind(raw)
        low, high = _BOUNDS[name]
        if not low <= value <= high:
            raise ValueError(f"{name}: {value} is not between {low:g} and {high:g}")
        return value
    if not isinstance(raw, str):
        raise ValueError(f"{name}: {raw!r} is not a string")
    return raw.strip()


_KINDS: dict[str, type] = {
    "url": str,
    "cluster": str,
    "token_file": str,
    "api_token": str,
    "application": str,
    "sample_rate": float,
    "max_per_second": int,
    "queue_size": int,
    "batch_size": int,
    "flush_seconds": float,
    "timeout_seconds": float,
    "max_backoff_seconds": float,
    "hash_kib": int,
    "ca_file": str,
    "enabled": bool,
}


def load(environ: Mapping[str, str] | None = None, **given: Any) -> Config:
    """Settings from ``given`` (arguments, strict), then ``environ`` (``os.environ``; lenient), then defaults."""
    environ = os.environ if environ is None else environ
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown agent setting {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, variable in ENV.items():
        if given.get(name) is not None:
            values[name] = _convert(name, _KINDS[name], given[name])
        elif environ.get(variable, "").strip():
            try:
                values[name] = _convert(name, _KINDS[name], environ[variable])
            except ValueError as exc:
                logger.warning("icc_agent: ignoring %s (%s); using the default", variable, exc)
    route_of = given.get("route_of")
    if route_of is not None and not callable(route_of):
        raise ValueError("route_of must be a function of the scope or environ")
    values["route_of"] = route_of
    return Config(**values)
