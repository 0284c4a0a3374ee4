"""Prometheus metrics of reconciliation: sync duration, watch events applied, lag, cluster status."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SYNC_SECONDS = Histogram(
    "icc_clusters_sync_seconds",
    "Duration of a full sync of one cluster (list every kind, diff, apply)",
    ["cluster"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120, 300),
)
SYNC_CHANGES = Counter(
    "icc_clusters_sync_changes_total", "Rows created/updated/deleted by full syncs", ["cluster", "kind", "change"]
)
WATCH_EVENTS = Counter(
    "icc_clusters_watch_events_total", "Watch events applied to the database", ["cluster", "kind", "type"]
)
WATCH_APPLY_SECONDS = Histogram(
    "icc_clusters_watch_apply_seconds",
    "From receiving a watch event to its database commit",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
WATCH_LAG = Gauge(
    "icc_clusters_watch_lag_seconds",
    "Seconds since the last message (event or bookmark) on a watch stream",
    ["cluster", "kind"],
)
WATCH_RELISTS = Counter(
    "icc_clusters_watch_relists_total", "Relists after 410 Gone or a broken stream", ["cluster", "kind"]
)
CLUSTER_STATUS = Gauge("icc_clusters_status", "1 for the cluster's current status", ["cluster", "status"])
