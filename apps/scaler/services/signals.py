"""Pushed signals: per-pod values of a policy's metric, validated strictly (refusals counted in ``/metrics``),
stored briefly, not audited one by one; a batch asks for an immediate (debounced) evaluation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.clusters.models import Application, Pod
from apps.core.errors import DomainError
from apps.scaler import metrics
from apps.scaler.models import ScalingPolicy, Signal
from apps.scaler.services.evaluation_requests import request_evaluation
from apps.scaler.services.validation import METRIC_NAME

SIGNAL_FUTURE_SECONDS = 60
SIGNAL_PAST_SECONDS = 600
MAX_SIGNAL_VALUES = 1000


class SignalRejected(DomainError):
    """A pushed signal batch ICC refuses (400); ``reason`` labels the refusal in /metrics."""

    def __init__(self, message: str, *, field: str, reason: str) -> None:
        super().__init__(message, field=field, code="signal_rejected")
        self.reason = reason


def _reject(message: str, *, field: str, reason: str) -> SignalRejected:
    metrics.SIGNALS_REJECTED.labels(reason=reason).inc()
    return SignalRejected(message, field=field, reason=reason)


def reject_signal(message: str, *, field: str, reason: str) -> SignalRejected:
    """For interfaces refusing a batch before the service sees it (another application's identity)."""
    return _reject(message, field=field, reason=reason)


def _timestamp(value: Any, index: int, now: datetime) -> datetime:
    field = f"values[{index}].timestamp"
    if value is None:
        return now
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        try:
            at = datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _reject("not a valid time", field=field, reason="bad_timestamp") from None
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise _reject("an ISO 8601 time with its offset, or Unix seconds", field=field, reason="bad_timestamp")
        at = parsed
    else:
        raise _reject("an ISO 8601 time with its offset, or Unix seconds", field=field, reason="bad_timestamp")
    if at > now + timedelta(seconds=SIGNAL_FUTURE_SECONDS):
        raise _reject(
            f"{at.isoformat()} is more than {SIGNAL_FUTURE_SECONDS} s in the future", field=field, reason="future"
        )
    if at < now - timedelta(seconds=SIGNAL_PAST_SECONDS):
        raise _reject(
            f"{at.isoformat()} is more than {SIGNAL_PAST_SECONDS // 60} minutes old", field=field, reason="stale"
        )
    return at


def record_signals(*, application: Application, metric: Any, values: Any) -> int:
    """Store a batch of per-pod values of one metric and ask for an immediate (debounced) evaluation.

    The whole batch is refused (and never moves replicas) when any value is bad: an unknown metric, a pod that is
    not one of the application's pods in ICC's observed state, a negative or non-numeric value, or a time more
    than 60 s ahead or 10 min behind."""
    now = timezone.now()
    if not isinstance(metric, str) or not METRIC_NAME.match(metric):
        raise _reject(f"a metric name matching {METRIC_NAME.pattern}", field="metric", reason="bad_metric")
    policies = list(ScalingPolicy.objects.filter(application=application, enabled=True))
    if not any(m.get("name") == metric for p in policies for m in p.metrics):
        raise _reject(
            f"no enabled scaling policy of {application} uses a metric named {metric!r}",
            field="metric",
            reason="unknown_metric",
        )
    if not isinstance(values, list) or not values or len(values) > MAX_SIGNAL_VALUES:
        raise _reject(f"a list of 1 to {MAX_SIGNAL_VALUES} values", field="values", reason="bad_values")
    pods = set(Pod.objects.filter(application=application, deleting=False).values_list("name", flat=True))
    rows = []
    for index, item in enumerate(values):
        if not isinstance(item, dict) or set(item) - {"pod", "value", "timestamp"}:
            raise _reject(
                "an object with pod, value and optionally timestamp", field=f"values[{index}]", reason="bad_values"
            )
        pod = item.get("pod")
        if not isinstance(pod, str) or pod not in pods:
            raise _reject(
                f"{pod!r} is not a pod of application {application} (as ICC observes it)",
                field=f"values[{index}].pod",
                reason="unknown_pod",
            )
        value = item.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _reject("a finite number", field=f"values[{index}].value", reason="not_numeric")
        if value < 0:
            raise _reject("must not be negative", field=f"values[{index}].value", reason="negative")
        rows.append(
            Signal(
                application=application,
                metric=metric,
                pod=pod,
                value=float(value),
                at=_timestamp(item.get("timestamp"), index, now),
            )
        )
    with transaction.atomic():
        Signal.objects.bulk_create(rows)
        for policy in policies:
            if any(m.get("name") == metric for m in policy.metrics):
                request_evaluation(policy, trigger="signal")
    metrics.SIGNALS_ACCEPTED.inc(len(rows))
    return len(rows)


def prune_signals(older_than_seconds: int = 3600) -> int:
    deleted, _ = Signal.objects.filter(received_at__lt=timezone.now() - timedelta(seconds=older_than_seconds)).delete()
    return int(deleted)
