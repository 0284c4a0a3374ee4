"""The process-wide watcher: watches every unpaused cluster whose lease this process holds, and the embedded
default that runs one as threads of ``manage.py run``."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from apps.clusters import sync
from apps.clusters.models import Cluster, ClusterStatus
from apps.clusters.watch import leases
from apps.clusters.watch.applier import Applier
from apps.clusters.watch.cluster import ClusterWatch, credentials_fingerprint

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.25  # the main loop: health, WatchState flushes, lag
POLL_SECONDS = 2.0  # how soon new, paused and deleted clusters are noticed


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
        # Stop acting this long before a lease not renewed could expire (and be taken) elsewhere.
        self.lease_margin = max(1.0, self.lease_seconds / 5)

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
        if self.clusters and now - self._renewed_ok > self.lease_seconds - self.lease_margin:
            # Not renewed in time (the database is unreachable or slow): stop before the leases can expire and
            # another replica takes them, so two never apply the same cluster.
            logger.warning("could not renew watch leases in time: stopping every watch")
            for pk, watch in list(self.clusters.items()):
                self._forget(pk, watch, release=False, write=False)
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
            sent = time.monotonic()
            if not leases.acquire(pk, self.holder, self.lease_seconds):
                continue
            if not self.clusters:  # the first lease held: the renewal clock starts with it
                self._renewed_ok = sent
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
        sent = time.monotonic()  # the leases cannot expire before sent + lease: the database stamps them later
        try:
            held = leases.renew(self.clusters, self.holder, self.lease_seconds)
        except DatabaseError as exc:
            with contextlib.suppress(Exception):
                connection.close()
            logger.warning("could not renew watch leases (%s); trying again", exc)
            return
        self._renewed_ok = sent
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
