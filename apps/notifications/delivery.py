"""Sending one delivery exactly once: claim it by compare-and-swap, send, record the answer, retry or give up.

A claim is ``UPDATE delivery SET status='sending', claim_token=<new> WHERE id=... AND status IN ('pending',
'failed') AND next_attempt_at <= now``: of several workers handed the same delivery (a retry re-sent, the sweeper
re-sending a lost one), exactly one changes the row and sends. The claim happens under a lock on the channel's row,
which also makes the rate limit exact across workers: a channel sends at most ``max_per_minute`` deliveries in any
60 seconds; a delivery over the limit is deferred (stays pending, due when the oldest claim of the window leaves
it), never dropped. A failed attempt leaves the delivery ``failed`` (its attempts, the last answer and the next
attempt's time are stored, so the log shows it) and it is retried with exponential backoff and jitter up to
``NOTIFICATIONS_MAX_ATTEMPTS`` attempts, then the delivery is ``dead`` (the dead letters the portal and the API
list).

States: pending → sending → sent | failed → sending → … → sent | dead; a claim of a vanished worker goes back to
pending (the sweeper); a rate-limit deferral keeps the status it had.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F

from apps.notifications import metrics
from apps.notifications.channels import Answer, Note, send
from apps.notifications.models import Channel, Delivery, DeliveryStatus

logger = logging.getLogger(__name__)
RATE_WINDOW = timedelta(seconds=60)
CLAIM_TIMEOUT = timedelta(minutes=5)  # a claim older than this belongs to a worker that died: the sweeper frees it
WAITING = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)  # to be sent (again) once due


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claimed:
    delivery: Delivery
    token: uuid.UUID


@dataclass(frozen=True)
class Outcome:
    """What became of one try: the delivery's status after it, and when to try again (None: no retry)."""

    status: str | None
    retry_at: datetime | None = None


def countdown(due: datetime) -> float | None:
    """Seconds from now until ``due`` for a task's countdown (None: at once)."""
    return max(0.0, (due - utcnow()).total_seconds()) or None


def backoff(attempt: int) -> float:
    """Rule: exponential backoff with equal jitter, capped: base·2^(n-1), between half and all of it."""
    base = float(settings.NOTIFICATIONS_BACKOFF_SECONDS)
    delay = min(float(settings.NOTIFICATIONS_MAX_BACKOFF_SECONDS), base * 2 ** max(0, attempt - 1))
    return delay / 2 + random.random() * delay / 2  # noqa: S311 - jitter, not cryptography


def claim(delivery_id: int) -> Claimed | datetime | None:
    """Take the delivery (see the module docstring): the claim, the moment it is deferred to by the rate limit,
    or None when it is not ours to send (sent, taken by another worker, not due)."""
    with transaction.atomic():
        # Fetched once, with what sending needs; the claim below re-checks the status in its WHERE.
        delivery = Delivery.objects.select_related("message", "channel").filter(pk=delivery_id).first()
        if delivery is None or delivery.status not in WAITING:
            return None
        now = utcnow()
        if delivery.channel_id is not None:
            # The channel's row lock serialises the claims of its deliveries: the rate limit is exact.
            limit = (
                Channel.objects.select_for_update()
                .filter(pk=delivery.channel_id)
                .values_list("max_per_minute", flat=True)
            )
            max_per_minute = limit.first()
            if max_per_minute is None:
                return None
            # The limit's claim of the window, newest first: when it exists the window is full until it leaves.
            limit_claim = (
                Delivery.objects.filter(channel_id=delivery.channel_id, claimed_at__gt=now - RATE_WINDOW)
                .order_by("-claimed_at")
                .values_list("claimed_at", flat=True)[max_per_minute - 1 : max_per_minute]
                .first()
            )
            if limit_claim is not None:
                until = limit_claim + RATE_WINDOW + timedelta(milliseconds=10)
                changed = Delivery.objects.filter(pk=delivery_id, status__in=WAITING).update(
                    next_attempt_at=until, reason=f"deferred by the rate limit of {max_per_minute}/min"
                )
                kind = delivery.channel.kind if delivery.channel is not None else "subscription"
                metrics.DELIVERIES.labels(channel=kind, outcome="deferred").inc()
                return until if changed else None
        token = uuid.uuid4()
        changed = Delivery.objects.filter(  # unchanged attempts: no other claim came between the read and this
            pk=delivery_id,
            status__in=WAITING,
            attempts=delivery.attempts,
            next_attempt_at__lte=now + timedelta(milliseconds=50),
        ).update(status=DeliveryStatus.SENDING, claim_token=token, claimed_at=now, attempts=F("attempts") + 1)
        if changed != 1:
            return None
    # What the UPDATE wrote: the rest of the row is as read (claims change only these fields).
    delivery.status, delivery.claim_token, delivery.claimed_at = DeliveryStatus.SENDING, token, now
    delivery.attempts += 1
    return Claimed(delivery, token)


def finish(claimed: Claimed, answer: Answer) -> Outcome:
    """Record the answer on the delivery if the claim is still ours; decide the retry."""
    d = claimed.delivery
    now = utcnow()
    live = Delivery.objects.filter(pk=d.pk, claim_token=claimed.token, status=DeliveryStatus.SENDING)
    common = {"status_code": answer.status_code, "reason": answer.reason[:300], "claim_token": None}
    if answer.ok:
        live.update(status=DeliveryStatus.SENT, sent_at=now, **common)
        return Outcome(DeliveryStatus.SENT)
    if d.attempts >= int(settings.NOTIFICATIONS_MAX_ATTEMPTS):
        live.update(status=DeliveryStatus.DEAD, **common)
        logger.warning("notification delivery %s is dead after %s attempts: %s", d.pk, d.attempts, answer.reason)
        return Outcome(DeliveryStatus.DEAD)
    retry_at = now + timedelta(seconds=backoff(d.attempts))
    live.update(status=DeliveryStatus.FAILED, next_attempt_at=retry_at, **common)
    return Outcome(DeliveryStatus.FAILED, retry_at)


def attempt(delivery_id: int) -> Outcome:
    """Claim, send and record one delivery; the outcome says whether (and when) to try again."""
    claimed = claim(delivery_id)
    if claimed is None:
        return Outcome(None)
    if isinstance(claimed, datetime):
        return Outcome(DeliveryStatus.PENDING, claimed)
    d = claimed.delivery
    label = d.channel.kind if d.channel is not None else "subscription"
    started = time.perf_counter()
    try:
        answer = send(d.channel, d.recipient, Note(d.message, d.kind, d.sequence))
    except Exception as exc:  # a bug or an undecryptable secret must end as a failed attempt, not a stuck claim
        logger.exception("notification delivery %s raised", d.pk)
        answer = Answer(False, None, f"ICC could not send it: {type(exc).__name__}")
    metrics.DELIVERY_SECONDS.labels(channel=label).observe(time.perf_counter() - started)
    outcome = finish(claimed, answer)
    metrics.DELIVERIES.labels(channel=label, outcome=outcome.status or "lost").inc()
    return outcome


def sweep(now: datetime | None = None) -> list[tuple[int, datetime]]:
    """Deliveries to (re)send: claims of dead workers are freed; pending or failed ones past due (lost tasks,
    deferrals) are returned with their due time for the caller to enqueue."""
    moment = now or utcnow()
    stale = Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lt=moment - CLAIM_TIMEOUT)
    freed = list(stale.values_list("pk", flat=True)[:1000])
    Delivery.objects.filter(pk__in=freed, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.PENDING, claim_token=None, next_attempt_at=moment, reason="the sending worker vanished"
    )
    # Past due by more than a moment: its task was lost (a due delivery's own task is usually just running).
    due = Delivery.objects.filter(status__in=WAITING, next_attempt_at__lte=moment - timedelta(seconds=5))
    found = list(due.order_by("next_attempt_at").values_list("pk", "next_attempt_at")[:1000])
    return found + [(pk, moment) for pk in freed]
