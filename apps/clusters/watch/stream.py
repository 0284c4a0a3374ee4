"""One watch stream: list one kind of one cluster (to get a resourceVersion and repair the rows), then watch from
that version with bookmarks; relist on 410 Gone; reconnect with jittered backoff on errors. Stream threads only
talk HTTP: their events and relists go to an :class:`apps.clusters.watch.applier.Applier`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import random
import threading
import time
from datetime import datetime
from typing import Any, Protocol

import orjson
import urllib3
from django.utils import timezone
from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError

from apps.clusters import gateway as gateways
from apps.clusters import sync
from apps.clusters.kinds import Kind
from apps.clusters.metrics import WATCH_RELISTS
from apps.clusters.watch.applier import Applier, Job, StreamOwner

logger = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = (240, 300)  # the server ends each watch after a random time in this range
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 10.0


class StreamCluster(StreamOwner, Protocol):
    """What a stream reads of its cluster watch (:class:`apps.clusters.watch.cluster.ClusterWatch`)."""

    @property
    def gateway(self) -> gateways.Gateway: ...


def backoff(attempt: int) -> float:
    """Jittered exponential backoff: ~0.25 s, 0.5 s, 1 s ... up to 10 s (x 0.5-1.5)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempt - 1)) * (0.5 + random.random())  # noqa: S311


class StreamBroken(Exception):
    """A watch that was connected broke off (the caller reconnects from its last resourceVersion)."""

    def __init__(self, error: gateways.KubeError) -> None:
        super().__init__(error.message)
        self.error = error


class KindStream(threading.Thread):
    """List, then watch one kind of one cluster, for as long as the cluster watch runs."""

    def __init__(self, owner: StreamCluster, kind: Kind, applier: Applier, resource_version: str = "") -> None:
        super().__init__(name=f"icc-watch-{owner.name}-{kind.key}", daemon=True)
        self.owner = owner
        self.kind = kind
        self.applier = applier
        self.resource_version = resource_version  # "" -> list first
        self.stopped = threading.Event()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._response_lock = threading.Lock()
        self._relist_wanted = False
        # Health and counters, read by the main loop (plain attributes: the GIL keeps them consistent).
        self.connected = False
        self.ever_connected = False
        self.failing: BaseException | None = None
        self.last_error = ""
        self.attempt = 0
        self.last_message = time.monotonic()
        self.last_message_at: datetime | None = None
        self.last_event_at: datetime | None = None
        self.messages = 0
        self.submitted = 0
        self.completed = 0
        self.gone_streak = 0
        self.applied = 0
        self.relists = 0
        self.flushed_applied = 0
        self.flushed_relists = 0
        self.flushed_signature: tuple[Any, ...] = ()
        self.flushed_at = 0.0

    # -- control (other threads)

    def stop(self) -> None:
        self.stopped.set()
        self._interrupt()

    def restart(self, *, relist: bool, error: str = "") -> None:
        """Drop the current watch; ``relist`` makes the stream list again before it watches."""
        self._relist_wanted = self._relist_wanted or relist
        if error:
            self.last_error = error
        self._interrupt()

    def _interrupt(self) -> None:
        with self._response_lock:
            if self._response is not None:
                with contextlib.suppress(Exception):
                    self._response.shutdown()

    # -- the loop

    def run(self) -> None:
        try:
            self._loop()
        finally:
            self.connected = False

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                if not self.resource_version or self._relist_wanted:
                    self._relist()
                self._watch()
            except gateways.Gone as exc:
                # The version is too old (compacted): list again, which repairs whatever the gap hid.
                logger.info(
                    "watch %s %s: resourceVersion %s is gone; relisting",
                    self.owner.name,
                    self.kind.key,
                    self.resource_version,
                )
                self.resource_version = ""
                self._count_relist()
                self.gone_streak += 1
                if self.gone_streak > 1:  # gone again without a single event in between: do not spin
                    self._fail(exc, broken=True)
            except StreamBroken as exc:
                self._fail(exc.error, broken=True)
            except gateways.KubeError as exc:
                self._fail(exc)
            except Exception as exc:  # a bug or a database failure: log it, relist after a pause
                if not self.stopped.is_set():
                    logger.exception("watch %s %s failed", self.owner.name, self.kind.key)
                self._relist_wanted = True
                self._fail(exc)

    def _count_relist(self) -> None:
        self.relists += 1
        WATCH_RELISTS.labels(self.owner.name, self.kind.key).inc()

    def _relist(self) -> None:
        had_version = bool(self.resource_version) or self.ever_connected
        rows, list_rv = sync.list_kind(self.owner.gateway, self.kind.key)
        self._connected()
        if self._relist_wanted and had_version:
            self._count_relist()
        self._relist_wanted = False
        future: concurrent.futures.Future[sync.SyncResult] = concurrent.futures.Future()
        self.applier.submit(Job(stream=self, relist=(rows, list_rv), future=future))
        while not self.stopped.is_set():
            try:
                result = future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                continue
            except concurrent.futures.CancelledError:
                return
            changes = result.changes.get(self.kind.key, {})
            if any(changes.values()):
                logger.info("watch %s %s: relist at %s changed %s", self.owner.name, self.kind.key, list_rv, changes)
            self.resource_version = list_rv
            return

    def _watch(self) -> None:
        timeout = random.randint(*WATCH_TIMEOUT_SECONDS)  # noqa: S311 - spreads reconnects
        gateway = self.owner.gateway
        response = gateway.raw(
            "GET",
            self.kind.path,
            query={
                **self.kind.params,
                "watch": "1",
                "resourceVersion": self.resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout,
            },
            stream=True,
            retries=0,
            timeout=(min(5.0, gateway.timeout), timeout + 15),
        )
        with self._response_lock:
            self._response = response
        if self._interrupted():
            self._interrupt()
        self._connected()
        opened, messages = time.monotonic(), self.messages
        clean = False
        try:
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._handle(orjson.loads(line))
            clean = True
        except (ProtocolError, ReadTimeoutError, HTTPError, OSError) as exc:
            if not self._interrupted():
                raise StreamBroken(gateways._network_error(exc, gateway.server)) from None
        finally:
            with self._response_lock:
                self._response = None
            if not clean or self._interrupted():
                response.close()  # a socket shut down or broken is not given back to the pool
            response.release_conn()
        if clean and not self._interrupted():
            if time.monotonic() - opened < 1.0 and self.messages == messages:  # ended at once: do not spin
                raise StreamBroken(gateways.Unreachable(f"{gateway.server} ended the watch at once"))
            self.attempt = 0  # the server ended the watch after timeoutSeconds: reconnect at once

    def _interrupted(self) -> bool:
        return self.stopped.is_set() or self._relist_wanted

    def _handle(self, event: dict[str, Any]) -> None:
        received = time.monotonic()
        if self._interrupted():
            return
        event_type = str(event.get("type") or "")
        obj = event.get("object") or {}
        if event_type == "ERROR":
            code = int(obj.get("code") or 500)
            raise gateways._error_for(code, orjson.dumps(obj), f"watch {self.kind.path}")
        self.last_message = received
        self.last_message_at = timezone.now()
        self.messages += 1
        self.attempt = self.gone_streak = 0
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if event_type in ("ADDED", "MODIFIED", "DELETED"):
            self.applier.submit(Job(stream=self, event_type=event_type, obj=obj, received=received))
        if version:
            self.resource_version = version  # BOOKMARK: only the version moves on

    def _connected(self) -> None:
        self.connected = self.ever_connected = True
        self.failing = None
        self.last_error = ""
        self.last_message = time.monotonic()
        self.last_message_at = timezone.now()

    def _fail(self, error: BaseException, *, broken: bool = False) -> None:
        """Record a failure and wait before the next attempt. A stream that broke off once is given one quick
        reconnect before it counts as failing (servers and proxies end long requests now and then)."""
        self.connected = False
        if self.stopped.is_set():
            return
        self.attempt += 1
        message = error.message if isinstance(error, gateways.KubeError) else f"{error.__class__.__name__}: {error}"
        self.last_error = message
        if not broken or self.attempt > 1:
            self.failing = error
        delay = backoff(self.attempt)
        level = logging.WARNING if self.attempt <= 2 else logging.DEBUG
        logger.log(level, "watch %s %s: %s; retry in %.1fs", self.owner.name, self.kind.key, message, delay)
        self.stopped.wait(delay)
