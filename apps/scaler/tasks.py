"""Scaler tasks on the ``decisions`` queue: one policy's evaluation, and the periodic pass over enabled policies."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from apps.core.tasking import icc_task
from apps.scaler import evaluation, services
from apps.scaler.models import ScalingPolicy

PERIOD_SECONDS = 15.0


@icc_task(name="scaler.evaluate", queue="decisions", soft_time_limit=60)
def evaluate_policy(policy_id: int, trigger: str = "periodic") -> dict[str, Any] | None:
    cache.delete(services.debounce_key(policy_id))  # requests from now on enqueue a new evaluation
    decision = evaluation.evaluate(policy_id, trigger)
    if decision is None:
        return None
    return {"decision": decision.pk, "outcome": decision.outcome, "desired": decision.desired_replicas}


@icc_task(name="scaler.evaluate_due", queue="decisions", soft_time_limit=30)
def evaluate_due() -> list[int]:
    """Every ~15 s: one evaluation per enabled policy (a pending one is not doubled); old signals pruned."""
    queued = []
    for policy in ScalingPolicy.objects.filter(enabled=True).only("id", "enabled"):
        if services.request_evaluation(policy, trigger="periodic"):
            queued.append(policy.pk)
    services.prune_signals()
    return queued
