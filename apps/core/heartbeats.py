"""Role heartbeats: each ICC process (web, worker, beat, watcher, cron scheduler) writes
``icc:role:<role>:<host:pid>`` to Redis every few seconds with its version, start time and the leases it holds,
with a TTL of three beats; a process that dies simply disappears. The System page and ``/metrics`` list them.

Without Redis (the embedded default: one process) the same records live in this process's memory.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from apps.core import redis_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "icc:role:"
DEFAULT_INTERVAL = 5.0
ROLES = ("web", "worker", "beat", "watcher", "cron-scheduler")

_local: dict[str, tuple[float, dict[str, Any]]] = {}  # key -> (expires at, record), without Redis
_local_lock = threading.Lock()


def icc_version() -> str:
    """The version from pyproject.toml (the image's code), with ICC_BUILD appended when the image sets it."""
    found = "unknown"
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        import tomllib

        found = str(tomllib.loads(pyproject.read_text())["project"]["version"])
    except (OSError, KeyError, ValueError):
        with contextlib.suppress(PackageNotFoundError):
            found = package_version("icc")
    build = os.environ.get("ICC_BUILD", "")
    return f"{found}+{build}" if build else found


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat_key(role: str, process: str | None = None) -> str:
    return f"{KEY_PREFIX}{role}:{process or process_id()}"


def beat_once(role: str, *, interval: float = DEFAULT_INTERVAL, extra: dict[str, Any] | None = None) -> bool:
    """Write this process's record for ``role`` (expires after three intervals). False when Redis refused."""
    record = {
        "role": role,
        "process": process_id(),
        "version": icc_version(),
        "pid": os.getpid(),
        "at": time.time(),
        **(extra or {}),
    }
    key = heartbeat_key(role)
    ttl = max(1, round(interval * 3))
    client = redis_client.client(2.0)
    if client is None:
        with _local_lock:
            _local[key] = (time.time() + ttl, record)
        return True
    try:
        client.set(key, json.dumps(record, default=str), ex=ttl)
    except Exception as exc:  # Redis down: the record lapses; the role keeps working
        logger.debug("heartbeat of %s not written: %s", role, exc)
        return False
    return True


def forget(role: str) -> None:
    """Remove this process's record at once (graceful stop)."""
    key = heartbeat_key(role)
    client = redis_client.client(2.0)
    if client is None:
        with _local_lock:
            _local.pop(key, None)
        return
    try:
        client.delete(key)
    except Exception:  # it expires on its own
        logger.debug("heartbeat of %s not removed", role, exc_info=True)


def processes() -> list[dict[str, Any]]:
    """Every fresh record, sorted by role and process; each with ``age_s`` (seconds since its last beat)."""
    now = time.time()
    found: list[dict[str, Any]] = []
    client = redis_client.client(2.0)
    if client is None:
        with _local_lock:
            found = [dict(record) for expires, record in _local.values() if expires > now]
    else:
        keys = sorted(client.scan_iter(match=f"{KEY_PREFIX}*", count=500))
        for raw in client.mget(keys) if keys else []:
            if raw is None:
                continue
            try:
                found.append(json.loads(raw))
            except ValueError:
                continue
    for record in found:
        record["age_s"] = round(max(0.0, now - float(record.get("at", now))), 1)
    return sorted(found, key=lambda r: (str(r.get("role")), str(r.get("process"))))


def role_counts() -> dict[tuple[str, str], int]:
    """``{(role, version): processes}`` from the fresh records."""
    counts: dict[tuple[str, str], int] = {}
    for record in processes():
        key = (str(record.get("role")), str(record.get("version")))
        counts[key] = counts.get(key, 0) + 1
    return counts


class RoleHeartbeat:
    """Writes this process's record for ``role`` every ``interval`` seconds in a daemon thread; ``extra()``
    adds live details (the leases held). ``stop()`` removes the record."""

    def __init__(
        self, role: str, *, interval: float = DEFAULT_INTERVAL, extra: Callable[[], dict[str, Any]] | None = None
    ) -> None:
        self.role = role
        self.interval = interval
        self.extra = extra
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RoleHeartbeat:
        self._thread = threading.Thread(target=self._run, name=f"icc-heartbeat-{self.role}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                details = {"started_at": self.started_at, **(self.extra() if self.extra else {})}
            except Exception:
                details = {"started_at": self.started_at}
            beat_once(self.role, interval=self.interval, extra=details)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        forget(self.role)


_started: dict[str, RoleHeartbeat] = {}


def start_role(role: str, *, extra: Callable[[], dict[str, Any]] | None = None) -> RoleHeartbeat:
    """Start (once per process and role) the heartbeat of ``role``."""
    found = _started.get(role)
    if found is None:
        found = _started[role] = RoleHeartbeat(role, extra=extra).start()
        atexit.register(stop_role, role)  # a graceful exit (SIGTERM handled) leaves the list at once
    return found


def stop_role(role: str) -> None:
    found = _started.pop(role, None)
    if found is not None:
        found.stop()
