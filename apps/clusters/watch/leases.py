"""Watch leases: exactly one watcher process watches a cluster at a time, across replicas.

A lease is a ``WatchLease`` row per cluster naming its holder (``host:pid:random``) and when it expires. The
holder renews it every third of its lifetime; another watcher takes it over only once it has expired.
Taking and renewing are single conditional statements (``UPDATE ... WHERE holder = me OR expires_at <= now``,
or an ``INSERT`` that the primary key lets only one process win), so two replicas can never both hold it,
on PostgreSQL as on SQLite. On PostgreSQL every process reads the time from the database, so replicas with
skewed clocks still agree on when a lease expired.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from apps.clusters.models import WatchLease


def holder_id() -> str:
    """A name for this watcher process: host, process id and a random part (a restarted process differs)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def now() -> datetime:
    """The database's clock on PostgreSQL (one clock for every replica), this process' clock elsewhere."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement_timestamp()")
            value: datetime = cursor.fetchone()[0]
            return value
    return timezone.now()


def acquire(cluster_id: int, holder: str, seconds: float) -> bool:
    """Take (or keep) the lease of a cluster for ``seconds``. False when another holder's lease is still valid."""
    at = now()
    expires = at + timedelta(seconds=seconds)
    taken = (
        WatchLease.objects.filter(cluster_id=cluster_id)
        .filter(Q(holder=holder) | Q(expires_at__lte=at))
        .update(
            holder=holder,
            renewed_at=at,
            expires_at=expires,
            acquired_at=Case(When(holder=holder, then=F("acquired_at")), default=Value(at)),
        )
    )
    if taken:
        return True
    if WatchLease.objects.filter(cluster_id=cluster_id).exists():
        return False  # another holder's lease is valid
    try:
        with transaction.atomic():
            WatchLease.objects.create(
                cluster_id=cluster_id, holder=holder, acquired_at=at, renewed_at=at, expires_at=expires
            )
    except IntegrityError:  # another process holds it (or just took it), or the cluster is gone
        return False
    return True


def renew(cluster_ids: Iterable[int], holder: str, seconds: float) -> set[int]:
    """Extend this holder's leases; returns the clusters whose lease it still holds (the others were lost)."""
    ids = list(cluster_ids)
    if not ids:
        return set()
    at = now()
    WatchLease.objects.filter(cluster_id__in=ids, holder=holder).update(
        renewed_at=at, expires_at=at + timedelta(seconds=seconds)
    )
    return set(WatchLease.objects.filter(cluster_id__in=ids, holder=holder).values_list("cluster_id", flat=True))


def release(cluster_ids: Iterable[int], holder: str) -> int:
    """Give up this holder's leases at once, so that another watcher can take over without waiting."""
    ids = list(cluster_ids)
    if not ids:
        return 0
    deleted, _ = WatchLease.objects.filter(cluster_id__in=ids, holder=holder).delete()
    return deleted


def holder_of(cluster_id: int) -> str | None:
    """Who holds a valid lease on the cluster now (None when nobody does)."""
    holder: str | None = (
        WatchLease.objects.filter(cluster_id=cluster_id, expires_at__gt=now()).values_list("holder", flat=True).first()
    )
    return holder
