"""Prometheus metrics of the cron app (``icc_cron_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENESS = Histogram(
    "icc_cron_lateness_seconds",
    "Start of a run minus its due time (slot plus spread offset)",
    ["target"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DURATION = Histogram(
    "icc_cron_run_duration_seconds",
    "Duration of one attempt",
    ["target"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
RUNS = Counter("icc_cron_runs_total", "Finished runs by state", ["state"])
SCHEDULED = Counter("icc_cron_slots_scheduled_total", "Run rows inserted by this process's scheduler")
LATE = Counter("icc_cron_late_runs_total", "Runs that became late (not started or not finished in grace)", ["what"])
SCHEDULER_SLEEP = Gauge("icc_cron_scheduler_sleep_seconds", "How long the scheduler last decided to sleep")
