"""Delivery services: retrying a dead letter. Sending itself is :mod:`apps.notifications.delivery`'s (claimed by
compare-and-swap); a retry only puts the dead delivery back in the queue, fresh, and enqueues it after commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.core.access import Action, can
from apps.core.errors import ConflictError, ForbiddenError
from apps.notifications import events
from apps.notifications.models import Delivery, DeliveryStatus


def delivery_retry(*, delivery: Delivery, by: Any) -> Delivery:
    """Rule: whoever may act where the delivery's message is (operators and admins of its scope) may send a dead
    letter again; it starts over with a full set of attempts. Only a dead delivery is retried (compare-and-swap on
    its status: two people retrying at once send it once)."""
    if by is None or not can(by, Action.ACT, delivery):
        raise ForbiddenError("retrying a delivery needs the act right where its message is")
    now = datetime.now(UTC)
    with transaction.atomic():
        previous = {"attempts": delivery.attempts, "status_code": delivery.status_code, "reason": delivery.reason}
        changed = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.DEAD).update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            claim_token=None,
            reason=f"retried by {getattr(by, 'username', '') or 'someone'}"[:300],
        )
        if changed != 1:
            raise ConflictError("only a dead delivery is retried", field="status")
        message = delivery.message
        scope = {k: v for k, v in (("cluster", message.scope_cluster), ("namespace", message.scope_namespace)) if v}
        audit_record(action="notifications.delivery.retry", target=delivery, changes={"before": previous}, scope=scope)
        event_ids = list(message.events.values_list("pk", flat=True)[: events.MAX_EVENT_TOPICS])
        transaction.on_commit(lambda: _enqueue(delivery.pk, now))
        events.log_changed("retry", event_ids)
    delivery.refresh_from_db()
    return delivery


def _enqueue(delivery_id: int, due: datetime) -> None:
    from apps.notifications.tasks import deliver_at

    deliver_at(delivery_id, due)
