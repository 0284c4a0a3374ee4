"""Prometheus metrics of the scaler: evaluations by outcome, their duration, pushed signals accepted and refused."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DECISIONS = Counter("icc_scaler_decisions_total", "Scaling evaluations by trigger and outcome", ["trigger", "outcome"])
EVALUATION_SECONDS = Histogram(
    "icc_scaler_evaluation_seconds",
    "Duration of one evaluation (inputs, engine, decision row, actuation)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SIGNALS_ACCEPTED = Counter("icc_scaler_signals_accepted_total", "Pushed per-pod metric values accepted")
SIGNALS_REJECTED = Counter(
    "icc_scaler_signals_rejected_total", "Pushed signal batches refused (400), by reason", ["reason"]
)
ALERTS_RECEIVED = Counter("icc_scaler_alerts_total", "Alertmanager webhook alerts by what they matched", ["result"])
