"""Prometheus metrics that django-prometheus does not provide: tasks and websockets."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASK_RUNS = Counter("icc_task_runs_total", "Celery task executions by outcome", ["task", "outcome"])
TASK_DURATION = Histogram(
    "icc_task_duration_seconds",
    "Celery task duration",
    ["task"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
WS_CONNECTIONS = Gauge("icc_websocket_connections", "Open websocket connections in this process")
WS_SUBSCRIPTIONS = Counter("icc_websocket_subscriptions_total", "Topic subscriptions by outcome", ["outcome"])
WS_MESSAGES = Counter("icc_websocket_messages_sent_total", "HTML fragments pushed to websocket clients")
HEARTBEAT_AGE = Gauge("icc_heartbeat_age_seconds", "Seconds since the last heartbeat task ran", ["role"])
