"""Celery tasks of notifications: ``notifications.deliver`` (one delivery, retried at its backoff) and
``notifications.tick`` (periodic: repeats that are due, lost or deferred deliveries)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apps.core.tasking import icc_task
from apps.notifications import delivery, repeats


def deliver_at(delivery_id: int, due: datetime) -> None:
    """Enqueue the delivery for ``due`` (at once when it is past)."""
    countdown = max(0.0, (due - datetime.now(UTC)).total_seconds())
    deliver.apply_async(args=[delivery_id], countdown=countdown or None)


@icc_task(name="notifications.deliver", queue="default", soft_time_limit=60)
def deliver(delivery_id: int) -> str | None:
    outcome = delivery.attempt(delivery_id)
    if outcome.retry_at is not None:
        deliver_at(delivery_id, outcome.retry_at)
    return outcome.status


@icc_task(name="notifications.tick", queue="default", soft_time_limit=60)
def tick() -> dict[str, Any]:
    due = repeats.due_repeats() + delivery.sweep()
    for pk, at in due:
        deliver_at(pk, at)
    return {"enqueued": len(due)}
