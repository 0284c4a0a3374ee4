"""Prometheus metrics of notifications (``icc_notifications_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter("icc_notifications_events_total", "Domain events recorded", ["kind", "severity"])
MESSAGES = Counter(
    "icc_notifications_messages_total", "What events did to messages (opened, grouped, resolved, muted)", ["outcome"]
)
DELIVERIES = Counter(
    "icc_notifications_deliveries_total", "Delivery attempts by channel kind and outcome", ["channel", "outcome"]
)
DELIVERY_SECONDS = Histogram(
    "icc_notifications_delivery_seconds",
    "Time of one delivery attempt",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROUTING_DELAY = Histogram(
    "icc_notifications_routing_delay_seconds",
    "From an event's emission to its routing (stored by the emitter, routed by a worker)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
