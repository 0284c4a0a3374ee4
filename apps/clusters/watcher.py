"""The watcher role: one Kubernetes watch per cluster and kind, each event applied to the database at once.

``manage.py icc_watch`` runs a :class:`Watcher` (the embedded default runs one as threads of ``manage.py run``).
Every couple of seconds it reads the cluster table: it takes the lease (:mod:`apps.clusters.leases`) of each
unpaused cluster nobody else watches and starts a :class:`ClusterWatch` for it, and stops the watches of
clusters that were paused, deleted, given new credentials or whose lease it lost. A cluster watch runs one
:class:`KindStream` thread per kind in :data:`apps.clusters.kinds.KINDS`: list (to get a resourceVersion and
repair the rows), then watch from that version with bookmarks; relist on 410 Gone; reconnect with jittered
backoff on errors.

Stream threads only talk HTTP. The database work (events and relists) is done by a few :class:`Applier`
threads, each owning the streams hashed to it, so a stream's events and relists are applied in order and the
process holds a handful of database connections whatever the number of clusters. Each event is applied in
one transaction by :func:`apps.clusters.sync.apply_event`, which publishes the live updates after commit.

Health: a stream that cannot (re)connect is *failing*; a cluster whose failing streams all failed to connect
(refused, timed out, TLS) is ``unreachable``, one with other failures (403, 5xx, bad data) ``degraded``, one
with every stream connected ``connected`` — recorded through :func:`apps.clusters.sync.set_health`.
Per-stream state goes to ``WatchState`` rows at most once a second, and to Prometheus (events, apply time,
lag, relists).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import urllib3
from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone
from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError

from apps.clusters import gateway as gateways
from apps.clusters import leases, sync
from apps.clusters.kinds import KINDS, Kind
from apps.clusters.metrics import WATCH_APPLY_SECONDS, WATCH_EVENTS, WATCH_LAG, WATCH_RELISTS
from apps.clusters.models import Cluster, ClusterStatus, WatchState

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.25  # the main loop: health, WatchState flushes, lag
POLL_SECONDS = 2.0  # how soon new, paused and deleted clusters are noticed
FLUSH_SECONDS = 1.0  # WatchState rows and Cluster.last_event_at are written at most this often
HEARTBEAT_SECONDS = 30.0  # and an unchanged WatchState row at least this often
WATCH_TIMEOUT_SECONDS = (240, 300)  # the server ends each watch after a random time in this range
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 10.0
ERROR_REFRESH_SECONDS = 5.0  # a changed error of an unchanged status is recorded at most this often
CONNECTION_ERRORS = (gateways.Unreachable, gateways.TLSFailure)


def backoff(attempt: int) -> float:
    """Jittered exponential backoff: ~0.25 s, 0.5 s, 1 s ... up to 10 s (x 0.5-1.5)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempt - 1)) * (0.5 + random.random())  # noqa: S311


class StreamBroken(Exception):
    """A watch that was connected broke off (the caller reconnects from its last resourceVersion)."""

    def __init__(self, error: gateways.KubeError) -> None:
        super().__init__(error.message)
        self.error = error


# --- database work --------------------------------------------------------------------------------------------


@dataclass
class Job:
    stream: KindStream
    event_type: str = ""
    obj: dict[str, Any] = field(default_factory=dict)
    received: float = 0.0
    relist: tuple[list[dict[str, Any]], str] | None = None
    future: concurrent.futures.Future[sync.SyncResult] | None = None


class Applier(threading.Thread):
    """Applies the events and relists of the streams assigned to it, in order, on its own DB connection."""

    def __init__(self, index: int) -> None:
        super().__init__(name=f"icc-watch-apply-{index}", daemon=True)
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()

    def submit(self, job: Job) -> None:
        job.stream.submitted += 1  # only the stream's own thread submits
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(None)

    def run(self) -> None:
        try:
            while True:
                try:
                    job = self.jobs.get(timeout=1.0)
                except queue.Empty:
                    connection.close()  # idle: hand the connection back (to the pool)
                    continue
                if job is None:
                    return
                try:
                    self._run(job)
                finally:
                    job.stream.completed += 1  # only this applier completes the stream's jobs
        finally:
            connection.close()

    def _run(self, job: Job) -> None:
        stream = job.stream
        if stream.stopped.is_set():  # lease lost, cluster paused or deleted: apply nothing more
            if job.future is not None:
                job.future.cancel()
            return
        try:
            if job.relist is not None:
                rows, list_rv = job.relist
                result = sync.relist_apply(stream.owner.cluster, stream.kind.key, rows, list_rv)
                if job.future is not None:
                    job.future.set_result(result)
                return
            sync.apply_event(stream.owner.cluster, stream.kind.key, job.event_type, job.obj)
            done = time.monotonic()
            WATCH_APPLY_SECONDS.labels(stream.kind.key).observe(done - job.received)
            WATCH_EVENTS.labels(stream.owner.name, stream.kind.key, job.event_type).inc()
            stream.applied += 1
            stream.last_event_at = timezone.now()
        except Exception as exc:
            if isinstance(exc, DatabaseError):
                with contextlib.suppress(Exception):
                    connection.close()
            if job.future is not None:
                job.future.set_exception(exc)
                return
            # An event that cannot be applied: say so, and let the stream relist (which repairs the row).
            where = (stream.owner.name, stream.kind.key, job.event_type)
            if isinstance(exc, DatabaseError):  # the database is away: one line, not a traceback per event
                logger.warning("watch %s %s: applying a %s event failed: %s", *where, exc)
            else:
                logger.exception("watch %s %s: applying a %s event failed", *where)
            stream.restart(relist=True, error=f"applying an event failed: {exc.__class__.__name__}: {exc}")


# --- one watch stream -------------------------------------------------------------------------------------------


class KindStream(threading.Thread):
    """List, then watch one kind of one cluster, for as long as the cluster watch runs."""

    def __init__(self, owner: ClusterWatch, kind: Kind, applier: Applier, resource_version: str = "") -> None:
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


# --- one cluster ------------------------------------------------------------------------------------------------


def credentials_fingerprint(blob: bytes | memoryview) -> str:
    return hashlib.blake2b(bytes(blob), digest_size=16).hexdigest()


class ClusterWatch:
    """The streams of one cluster, its health as they see it, and their WatchState rows."""

    def __init__(
        self, cluster: Cluster, appliers: list[Applier], resource_versions: dict[str, str] | None = None
    ) -> None:
        self.cluster = cluster
        self.name = cluster.name
        self.fingerprint = credentials_fingerprint(cluster.credentials)
        self.gateway = gateways.for_cluster(cluster)
        versions = resource_versions or {}
        self.streams = {
            key: KindStream(self, kind, appliers[_shard(cluster.pk, key, len(appliers))], versions.get(key, ""))
            for key, kind in KINDS.items()
        }
        self.reported: str | None = None
        self.reported_error = ""
        self.reported_at = 0.0
        self.flushed_at = 0.0
        self.flushed_event_at: datetime | None = None

    def start(self) -> None:
        for stream in self.streams.values():
            stream.start()

    def signal_stop(self) -> None:
        for stream in self.streams.values():
            stream.stop()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for stream in self.streams.values():
            stream.join(max(0.0, deadline - time.monotonic()))

    def drained(self) -> bool:
        return all(stream.submitted == stream.completed for stream in self.streams.values())

    def health(self) -> tuple[str, str] | None:
        """(status, error) as the streams see it; None until every stream connected once or one failed."""
        failing = [(key, s.failing, s.last_error) for key, s in self.streams.items() if s.failing is not None]
        if not failing:
            if all(s.ever_connected for s in self.streams.values()):
                return ClusterStatus.CONNECTED, ""
            return None
        kinds_by_message: dict[str, list[str]] = {}
        for key, _, message in failing:
            kinds_by_message.setdefault(message, []).append(key)
        error = "; ".join(f"watch {', '.join(kinds)}: {message}" for message, kinds in kinds_by_message.items())
        if all(isinstance(exc, CONNECTION_ERRORS) for _, exc, _ in failing):
            return ClusterStatus.UNREACHABLE, error[:2000]
        return ClusterStatus.DEGRADED, error[:2000]

    def report_health(self, stored_status: str | None = None) -> None:
        """Record the health the streams see when it changed, or when the cluster row says something else
        (``stored_status``: a failed full sync, a resumed cluster)."""
        seen = self.health()
        if seen is None:
            return
        status, error = seen
        unchanged = status == self.reported and stored_status in (None, status)
        # Same status: the error shown is refreshed only when it says something new, and not too often.
        if unchanged and (error == self.reported_error or time.monotonic() - self.reported_at < ERROR_REFRESH_SECONDS):
            return
        sync.set_health(self.cluster.pk, status, error)
        self.reported, self.reported_error, self.reported_at = status, error, time.monotonic()
        logger.info("cluster %s is %s%s", self.name, status, f": {error}" if error else "")

    def flush(self, *, force: bool = False, stopping: bool = False) -> None:
        """Write the streams' WatchState rows and the cluster's last event time (at most once a second)."""
        now = time.monotonic()
        if not force and now - self.flushed_at < FLUSH_SECONDS:
            return
        self.flushed_at = now
        for key, stream in self.streams.items():
            applied = stream.applied - stream.flushed_applied
            relists = stream.relists - stream.flushed_relists
            values: dict[str, Any] = {
                "resource_version": stream.resource_version[:32],
                "connected": stream.connected and not stopping,
                "last_message_at": stream.last_message_at,
                "last_error": stream.last_error[:4000] if stream.failing is not None and not stopping else "",
            }
            signature = (*values.values(), applied, relists)
            # Unchanged rows are rewritten only now and then: their updated_at says the watcher is alive.
            if not force and signature == stream.flushed_signature and now - stream.flushed_at < HEARTBEAT_SECONDS:
                continue
            stream.flushed_signature, stream.flushed_at = (*values.values(), 0, 0), now
            values.update(
                events_applied=F("events_applied") + applied, relists=F("relists") + relists, updated_at=timezone.now()
            )
            if not WatchState.objects.filter(cluster_id=self.cluster.pk, kind=key).update(**values):
                with contextlib.suppress(IntegrityError):
                    WatchState.objects.create(
                        cluster_id=self.cluster.pk,
                        kind=key,
                        **{**values, "events_applied": applied, "relists": relists},
                    )
            stream.flushed_applied += applied
            stream.flushed_relists += relists
        latest = max((s.last_event_at for s in self.streams.values() if s.last_event_at), default=None)
        if latest is not None and latest != self.flushed_event_at:
            Cluster.objects.filter(pk=self.cluster.pk).update(last_event_at=latest)
            self.flushed_event_at = latest

    def observe_lag(self) -> None:
        now = time.monotonic()
        for key, stream in self.streams.items():
            WATCH_LAG.labels(self.name, key).set(now - stream.last_message)

    def forget_metrics(self) -> None:
        for key in self.streams:
            with contextlib.suppress(KeyError):
                WATCH_LAG.remove(self.name, key)


def _shard(cluster_id: int, kind: str, count: int) -> int:
    digest = hashlib.blake2b(f"{cluster_id}:{kind}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % count


# --- the process-wide watcher ------------------------------------------------------------------------------------


class Watcher:
    """Watches every unpaused cluster whose lease this process holds. ``run()`` blocks; ``start()`` runs it in a
    thread (the embedded default and tests); ``stop()`` or ``request_stop()`` end it, releasing the leases."""

    def __init__(
        self,
        *,
        holder: str | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float = POLL_SECONDS,
        appliers: int | None = None,
    ) -> None:
        self.holder = holder or leases.holder_id()
        self.lease_seconds = float(lease_seconds or settings.CLUSTER_WATCH_LEASE_SECONDS)
        self.poll_seconds = poll_seconds
        if appliers is None:
            appliers = 1 if connection.vendor == "sqlite" else 4  # SQLite has one writer anyway
        self.appliers = [Applier(i) for i in range(max(1, appliers))]
        self.clusters: dict[int, ClusterWatch] = {}
        self.broken: dict[int, str] = {}  # cluster -> credentials fingerprint that could not be used
        self._finishers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._release = True
        self._thread: threading.Thread | None = None
        self._next_poll = 0.0
        self._next_renew = 0.0
        self._renewed_ok = time.monotonic()

    # -- lifecycle

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self.run, name="icc-watcher", daemon=True)
        self._thread.start()
        return self

    def request_stop(self, *, release: bool = True) -> None:
        """Ask the loop to end (safe from a signal handler); ``release=False`` leaves the leases to expire."""
        self._release = release
        self._stopping.set()

    def stop(self, *, release: bool = True, timeout: float = 15.0) -> None:
        self.request_stop(release=release)
        if self._thread is not None:
            self._thread.join(timeout)

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        for applier in self.appliers:
            applier.start()
        logger.info(
            "watcher %s started (lease %.0fs, %d appliers)", self.holder, self.lease_seconds, len(self.appliers)
        )
        failed_at = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    self.tick()
                    failed_at = 0.0
                except Exception as exc:  # the database may be down: keep trying, the leases expire on their own
                    if time.monotonic() - failed_at > 30:  # a traceback now and then, not four a second
                        logger.exception("watcher tick failed")
                        failed_at = time.monotonic()
                    else:
                        logger.debug("watcher tick failed: %s", exc)
                    with contextlib.suppress(Exception):
                        connection.close()
                self._stopping.wait(TICK_SECONDS)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        watches = list(self.clusters.items())
        for _, watch in watches:
            watch.signal_stop()
        for _, watch in watches:
            watch.join(10.0)
        for pk, watch in watches:  # a process that "dies" (release=False) records nothing either
            self._forget(pk, watch, release=self._release, write=self._release, wait=True)
        for finisher in self._finishers:
            finisher.join(20.0)
        for applier in self.appliers:
            applier.stop()
        for applier in self.appliers:
            applier.join(10.0)
        close_old_connections()
        connection.close()
        logger.info("watcher %s stopped%s", self.holder, "" if self._release else " (leases left to expire)")

    # -- the loop

    def tick(self) -> None:
        now = time.monotonic()
        stored: dict[int, str] | None = None
        if now >= self._next_renew:
            self._renew()
            self._next_renew = now + self.lease_seconds / 3
        if now >= self._next_poll:
            stored = self._poll()
            self._next_poll = now + self.poll_seconds
        for pk, watch in list(self.clusters.items()):
            watch.report_health(stored.get(pk) if stored is not None else None)
            watch.flush()
            watch.observe_lag()

    def _poll(self) -> dict[int, str]:
        """Start and stop cluster watches to match the cluster table; returns each watched cluster's status."""
        rows = {
            pk: (paused, status, credentials_fingerprint(blob))
            for pk, paused, status, blob in Cluster.objects.values_list("id", "paused", "status", "credentials")
        }
        for pk, watch in list(self.clusters.items()):
            row = rows.get(pk)
            if row is None or row[0]:
                logger.info("cluster %s %s: stopping its watches", watch.name, "removed" if row is None else "paused")
                self._forget(pk, watch, release=True)
            elif row[2] != watch.fingerprint:
                logger.info("cluster %s has new credentials: restarting its watches", watch.name)
                self._forget(pk, watch, release=False, write=False)
        for pk, (paused, _, fingerprint) in rows.items():
            if paused or pk in self.clusters or self.broken.get(pk) == fingerprint:
                continue
            if not leases.acquire(pk, self.holder, self.lease_seconds):
                continue
            cluster = Cluster.objects.filter(pk=pk).first()
            if cluster is None:
                leases.release([pk], self.holder)
                continue
            try:
                watch = ClusterWatch(cluster, self.appliers)
            except Exception as exc:  # credentials that cannot be read or used: say so, retry when they change
                logger.warning("cluster %s: cannot watch: %s", cluster.name, exc)
                self.broken[pk] = fingerprint
                sync.set_health(pk, ClusterStatus.DEGRADED, f"cannot watch: {exc}")
                leases.release([pk], self.holder)
                continue
            self.broken.pop(pk, None)
            self.clusters[pk] = watch
            watch.start()
            logger.info("watching cluster %s (%d kinds)", cluster.name, len(watch.streams))
        return {pk: row[1] for pk, row in rows.items() if pk in self.clusters}

    def _renew(self) -> None:
        if not self.clusters:
            self._renewed_ok = time.monotonic()
            return
        try:
            held = leases.renew(self.clusters, self.holder, self.lease_seconds)
        except DatabaseError as exc:
            with contextlib.suppress(Exception):
                connection.close()
            if time.monotonic() - self._renewed_ok > self.lease_seconds:
                logger.warning(
                    "could not renew watch leases for %.0fs (%s): stopping every watch", self.lease_seconds, exc
                )
                for pk, watch in list(self.clusters.items()):
                    self._forget(pk, watch, release=False, write=False)
            return
        self._renewed_ok = time.monotonic()
        for pk, watch in list(self.clusters.items()):
            if pk not in held:
                logger.warning("lost the watch lease of cluster %s: stopping its watches", watch.name)
                self._forget(pk, watch, release=False, write=False)

    def _forget(self, pk: int, watch: ClusterWatch, *, release: bool, write: bool = True, wait: bool = False) -> None:
        """Stop a cluster's streams; then (in the background unless ``wait``) let their queued events drain, record
        their state and release the lease, so that the loop keeps renewing the other leases meanwhile."""
        self.clusters.pop(pk, None)
        watch.signal_stop()  # from here on, nothing more of this cluster is applied
        watch.forget_metrics()
        if wait:
            self._finish(pk, watch, release=release, write=write)
            return
        finisher = threading.Thread(
            target=self._finish,
            args=(pk, watch),
            kwargs={"release": release, "write": write, "background": True},
            name=f"icc-watch-stop-{watch.name}",
            daemon=True,
        )
        self._finishers = [t for t in self._finishers if t.is_alive()] + [finisher]
        finisher.start()

    def _finish(self, pk: int, watch: ClusterWatch, *, release: bool, write: bool, background: bool = False) -> None:
        try:
            watch.join(10.0)
            if write:
                deadline = time.monotonic() + 5
                while not watch.drained() and time.monotonic() < deadline and any(a.is_alive() for a in self.appliers):
                    time.sleep(0.02)
                if Cluster.objects.filter(pk=pk).exists():
                    watch.flush(force=True, stopping=True)
            if release:
                leases.release([pk], self.holder)
        except DatabaseError:
            logger.warning("could not record the end of the watches of cluster %s", watch.name, exc_info=True)
        finally:
            if background:
                connection.close()


# --- the embedded default ---------------------------------------------------------------------------------------

_embedded: dict[str, Watcher] = {}


def start_embedded() -> Watcher:
    """Start the watcher as threads of this process (``manage.py run`` with ICC_WATCHER_EMBEDDED)."""
    if "watcher" not in _embedded:
        _embedded["watcher"] = Watcher().start()
    return _embedded["watcher"]


def stop_embedded() -> None:
    watcher = _embedded.pop("watcher", None)
    if watcher is not None:
        watcher.stop()
