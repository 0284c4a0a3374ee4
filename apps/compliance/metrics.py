"""Prometheus metrics of the compliance app (``icc_compliance_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ADMISSION = Counter(
    "icc_compliance_admission_reviews_total",
    "Admission reviews answered, by decision (allowed, warned, denied, refused token, bad request)",
    ["decision"],
)
# Fine buckets at the low end: the webhook's own answer time is meant to stay in single milliseconds.
ADMISSION_SECONDS = Histogram(
    "icc_compliance_admission_seconds",
    "Time to answer one admission review inside ICC (token check, evaluation, response)",
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
