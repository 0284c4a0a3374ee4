"""The watcher role: one Kubernetes watch per cluster and kind, each event applied to the database at once.

``manage.py icc_watch`` runs a :class:`Watcher` (the embedded default runs one as threads of ``manage.py run``).
Every couple of seconds it reads the cluster table: it takes the lease (:mod:`apps.clusters.watch.leases`) of each
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

``leases`` holds the leases, ``applier`` the database work, ``stream`` one kind's list and watch, ``cluster`` the
streams of one cluster and their health, ``watcher`` the process-wide loop.
"""

from __future__ import annotations

from apps.clusters.watch.applier import Applier
from apps.clusters.watch.cluster import ClusterWatch
from apps.clusters.watch.stream import KindStream
from apps.clusters.watch.watcher import Watcher, start_embedded, stop_embedded

__all__ = ["Applier", "ClusterWatch", "KindStream", "Watcher", "start_embedded", "stop_embedded"]
