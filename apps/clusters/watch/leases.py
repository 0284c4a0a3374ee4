"""Watch leases: exactly one watcher process watches a cluster at a time, across replicas.

Each cluster's watches are a singleton held through the core lease ``watch:<cluster_id>`` (:mod:`apps.core.leases`:
one atomic statement to take or renew, the database's clock, a generation that grows with each new holder). The
holder renews every third of its lifetime and stops watching before the lease could expire elsewhere; another
watcher takes it over only once it has expired, or at once when the holder released it on a graceful stop. So two
watcher replicas split the clusters between them and take over each other's when one dies.
"""

from __future__ import annotations

from collections.abc import Iterable

from apps.core.leases import holder_id, lease_acquire, lease_holder, lease_release_many, lease_renew_many

__all__ = ["acquire", "holder_id", "holder_of", "lease_name", "release", "renew"]


def lease_name(cluster_id: int) -> str:
    return f"watch:{cluster_id}"


def acquire(cluster_id: int, holder: str, seconds: float) -> bool:
    """Take (or keep) the lease of a cluster for ``seconds``. False when another holder's lease is still valid."""
    return lease_acquire(lease_name(cluster_id), holder, seconds) is not None


def renew(cluster_ids: Iterable[int], holder: str, seconds: float) -> set[int]:
    """Extend this holder's leases; returns the clusters whose lease it still holds (the others were lost)."""
    names = {lease_name(pk): pk for pk in cluster_ids}
    held = lease_renew_many(list(names), holder, seconds)
    return {names[name] for name in held}


def release(cluster_ids: Iterable[int], holder: str) -> int:
    """Give up this holder's leases at once, so that another watcher can take over without waiting."""
    return lease_release_many([lease_name(pk) for pk in cluster_ids], holder)


def holder_of(cluster_id: int) -> str | None:
    """Who holds a valid lease on the cluster now (None when nobody does)."""
    return lease_holder(lease_name(cluster_id))
