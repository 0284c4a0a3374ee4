"""The database work of the watcher: a few threads apply the events and relists of the streams hashed to them,
in order, each on its own database connection."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.db import DatabaseError, connection
from django.utils import timezone

from apps.clusters import sync
from apps.clusters.kinds import Kind
from apps.clusters.metrics import WATCH_APPLY_SECONDS, WATCH_EVENTS
from apps.clusters.models import Cluster

logger = logging.getLogger(__name__)


class StreamOwner(Protocol):
    """What an applier reads of a stream's cluster watch."""

    @property
    def cluster(self) -> Cluster: ...

    @property
    def name(self) -> str: ...


class Stream(Protocol):
    """What an applier reads and counts of a stream (:class:`apps.clusters.watch.stream.KindStream`)."""

    submitted: int
    completed: int
    applied: int
    last_event_at: datetime | None

    @property
    def owner(self) -> StreamOwner: ...

    @property
    def kind(self) -> Kind: ...

    @property
    def stopped(self) -> threading.Event: ...

    def restart(self, *, relist: bool, error: str = "") -> None: ...


@dataclass
class Job:
    stream: Stream
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
