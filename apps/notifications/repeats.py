"""Repeat-while-unresolved: an open, unmuted message of a rule with a repeat interval is sent again (one
``repeat`` delivery per channel, numbered) each time its interval passes, until a resolving event closes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import transaction

from apps.notifications.models import Delivery, DeliveryKind, Message, MessageState


def due_repeats(now: datetime | None = None) -> list[tuple[int, datetime]]:
    """Create the repeat deliveries that are due; returns them (id, due) for the caller to enqueue. Safe on many
    beat/worker replicas: messages are taken with SKIP LOCKED and the delivery rows are unique per sequence."""
    moment = now or datetime.now(UTC)
    created: list[tuple[int, datetime]] = []
    with transaction.atomic():
        due = (
            Message.objects.select_for_update(skip_locked=True)
            .filter(state=MessageState.OPEN, muted=False, rule__isnull=False, next_repeat_at__lte=moment)
            .select_related("rule")[:200]
        )
        for message in due:
            rule = message.rule
            assert rule is not None
            sequence = message.repeats + 1
            interval = timedelta(seconds=max(1, rule.repeat_interval_seconds))
            Message.objects.filter(pk=message.pk).update(repeats=sequence, next_repeat_at=moment + interval)
            rows = [
                Delivery(
                    message=message, channel=c, kind=DeliveryKind.REPEAT, sequence=sequence, next_attempt_at=moment
                )
                for c in rule.channels.filter(enabled=True)
            ]
            created += [(d.pk, moment) for d in Delivery.objects.bulk_create(rows)]
    return created
