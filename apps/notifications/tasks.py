"""Celery tasks of notifications: ``notifications.route`` (one stored event to its messages and deliveries),
``notifications.deliver`` (one delivery, retried at its backoff) and ``notifications.tick`` (periodic: repeats that
are due, lost or deferred deliveries, events whose routing task was lost)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apps.core.tasking import icc_task
from apps.notifications import delivery, repeats, routing


def deliver_at(delivery_id: int, due: datetime) -> None:
    """Enqueue the delivery for ``due`` (at once when it is past)."""
    deliver.apply_async(args=[delivery_id], countdown=delivery.countdown(due))


# Results are not kept (ignore_result): nothing reads them, and storing one is a Redis write per event and task.
@icc_task(name="notifications.route", queue="default", soft_time_limit=60, ignore_result=True)
def route(event_id: int) -> int:
    return routing.route(event_id)


@icc_task(name="notifications.deliver", queue="default", soft_time_limit=60, ignore_result=True)
def deliver(delivery_id: int) -> str | None:
    outcome = delivery.attempt(delivery_id)
    if outcome.retry_at is not None:
        deliver_at(delivery_id, outcome.retry_at)
    return outcome.status


@icc_task(name="notifications.tick", queue="default", soft_time_limit=60)
def tick() -> dict[str, Any]:
    lost = routing.unrouted()
    for pk in lost:
        route.delay(pk)
    due = repeats.due_repeats() + delivery.sweep()
    for pk, at in due:
        deliver_at(pk, at)
    return {"enqueued": len(due), "routed_again": len(lost)}
