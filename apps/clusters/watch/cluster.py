"""The streams of one cluster: its health as they see it, and their WatchState rows."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from datetime import datetime
from typing import Any

from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from apps.clusters import gateway as gateways
from apps.clusters import sync
from apps.clusters.kinds import KINDS
from apps.clusters.metrics import WATCH_LAG
from apps.clusters.models import Cluster, ClusterStatus, WatchState
from apps.clusters.watch.applier import Applier
from apps.clusters.watch.stream import KindStream

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0  # WatchState rows and Cluster.last_event_at are written at most this often
HEARTBEAT_SECONDS = 30.0  # and an unchanged WatchState row at least this often
ERROR_REFRESH_SECONDS = 5.0  # a changed error of an unchanged status is recorded at most this often
CONNECTION_ERRORS = (gateways.Unreachable, gateways.TLSFailure)


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
