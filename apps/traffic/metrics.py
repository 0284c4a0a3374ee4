"""Prometheus metrics of the traffic app (``icc_traffic_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECEIVED = Counter("icc_traffic_requests_total", "Export and sample requests received, by HTTP answer", ["outcome"])
FLUSHED = Counter("icc_traffic_records_flushed_total", "Span records and samples rolled up")
FLUSH_SECONDS = Histogram(
    "icc_traffic_flush_seconds",
    "Time to roll up one batch from the buffer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
