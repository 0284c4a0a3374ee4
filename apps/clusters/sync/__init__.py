"""Reconciliation: make the database mirror the cluster.

* :func:`full_sync` lists every kind (paginated), diffs against the rows and applies the difference in bulk.
  It is idempotent (a second run changes nothing) and single-flight per cluster (an advisory lock).
* :func:`relist_apply` applies a fresh list of one kind the same way (the watcher, after 410 Gone).
* :func:`apply_event` applies one watch event in one transaction.

They run concurrently (the watcher applies events while the periodic sync runs) and never go backwards: a row
whose stored resourceVersion is newer than the listed object is left alone; a bulk write re-checks, under row
locks, that no watch event changed or removed the row since the diff was read; a row is deleted by a sync only
when it is missing from the list and not newer than the list itself (the watcher may have created it after
the list was taken). Live views learn of changes through :func:`apps.core.events.publish` after commit.

What differs between kinds (their model, key, how a row finds its application, versions, retention, which
lists show a change) is data on :class:`apps.clusters.kinds.Kind`, read here.

``health`` records a cluster's health, ``versions`` its applications and their version history, ``links`` how
rows find their application, ``diff`` the guarded bulk diff, ``full`` the full sync and relist, ``watch_event``
one watch event.
"""

from __future__ import annotations

from apps.clusters.sync.diff import SyncResult
from apps.clusters.sync.full import full_sync, list_all, list_kind, relist_apply
from apps.clusters.sync.health import set_health
from apps.clusters.sync.watch_event import apply_event

__all__ = ["SyncResult", "apply_event", "full_sync", "list_all", "list_kind", "relist_apply", "set_health"]
