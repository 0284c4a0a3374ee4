"""The domain-event sink: record every event, match rules and subscriptions, group by deduplication key, and
create the deliveries a message needs (first, resolved; repeats come from :mod:`apps.notifications.repeats`).

Where the work happens: the sink runs in the emitting process, after its commit, so it only stores the event (one
INSERT) and enqueues ``notifications.route`` with the event's id; a worker routes it. Routing inline cost the
emitter 12 queries, 17-30 ms per event on 2 cores (bench/notifications.py), and grows with rules and subscriptions;
stored and enqueued it costs one INSERT and one Redis push. Exactly once: the event row is the idempotency key
(``routed_at`` set by compare-and-swap in the routing transaction; a task delivered twice, or the tick re-enqueuing
an event whose task was lost, finds it routed). Order within a condition is kept: routing an event first routes the
earlier unrouted events of its key, in order, each in its own transaction; the compare-and-swap holds the event's
row until commit, so a worker routing the same earlier event at that moment waits, then finds it routed. A
``resolves`` event thus never overtakes the event it resolves. ``NOTIFICATIONS_ROUTE_INLINE`` (tests) routes in the
emitting process instead.

Grouping: while a rule's message for a key is open, a new event of that key joins it (count + 1, no new delivery)
when it comes within the rule's group window of the previous one, or at any time when the rule repeats (the
repeats carry the count). Otherwise the quiet message is closed and a new one opens. The first delivery waits for
the group window, so what a burst becomes is one message with its count. A ``resolves`` event closes the open
message and, when the rule says so, sends one resolved message.

Maintenance: an event whose scope is in a maintenance window (:func:`apps.core.calendar.in_maintenance`) is marked;
its messages are marked too, and muted (recorded, not sent) unless the event is critical.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, Subquery

from apps.core import calendar
from apps.core.access import Action, can_at
from apps.core.domain_events import DomainEvent, Severity
from apps.core.events import DASHBOARD, send_many
from apps.notifications import cache, metrics
from apps.notifications.delivery import countdown
from apps.notifications.models import (
    Channel,
    Delivery,
    DeliveryKind,
    Event,
    Message,
    MessageState,
    Rule,
    Subscription,
)

logger = logging.getLogger(__name__)
cache.connect()  # every process that routes (or writes rules) keeps its routing view current


@dataclass(frozen=True)
class Route:
    """Who a message is for: a rule (to its channels) or a subscription (to its address)."""

    rule: Rule | None
    subscription: Subscription | None
    channels: tuple[int, ...]
    recipient: str
    window: int
    repeat: int
    notify_resolved: bool

    @property
    def owner(self) -> dict[str, object]:
        return {"rule": self.rule} if self.rule is not None else {"subscription": self.subscription}


def routes_for(event: Event, view: cache.RoutingSet | None = None) -> list[Route]:
    """The enabled rules and subscriptions matching the event (subscriptions only while their user may read it),
    from the process's routing view (:mod:`apps.notifications.cache`): no query but a matching subscription's
    user."""
    scope = event.scope
    view = view or cache.current()
    found: list[Route] = []
    for rule, channels in view.rules:
        if rule.matches(event.kind, event.severity, scope):
            found.append(_rule_route(rule, channels))
    for sub in view.subscriptions:
        if sub.matches(event.kind, event.severity, scope) and _may_read(sub, scope):
            found.append(Route(None, sub, (), sub.email, sub.group_window_seconds, 0, True))
    return found


def _may_read(sub: Subscription, scope: Any) -> bool:
    """Rule: a subscription reaches its user only while the user is active and may read the event's scope (checked
    per event: grants change outside this app)."""
    user = get_user_model().objects.filter(pk=sub.user_id, is_active=True).first()
    return user is not None and can_at(user, Action.READ, scope)


def _rule_route(rule: Rule, channels: tuple[int, ...]) -> Route:
    return Route(
        rule, None, channels, "", rule.group_window_seconds, rule.repeat_interval_seconds, rule.notify_resolved
    )


def resolving_routes(event: Event, view: cache.RoutingSet | None = None) -> list[Route]:
    """Rule: a resolving event reaches the owners of the open messages of its key, whatever its own kind and
    severity (``clusters.recovered`` at info resolves what ``clusters.unreachable`` at error opened); a subscription
    only while its user may still read the event's scope."""
    view = view or cache.current()
    found: list[Route] = []
    open_messages = Message.objects.filter(dedup_key=event.dedup_key, state=MessageState.OPEN).select_related(
        "subscription"
    )
    for message in open_messages:
        entry = view.rule(message.rule_id) if message.rule_id is not None else None
        if entry is not None:  # in the view: the rule is enabled
            found.append(_rule_route(*entry))
        sub = message.subscription
        if sub is not None and sub.enabled and _may_read(sub, event.scope):
            found.append(Route(None, sub, (), sub.email, sub.group_window_seconds, 0, True))
    return found


def _deliveries(message: Message, route: Route, kind: str, sequence: int, due: datetime) -> list[Delivery]:
    rows = [
        Delivery(message=message, channel_id=pk, kind=kind, sequence=sequence, next_attempt_at=due)
        for pk in route.channels
    ]
    if route.recipient:
        rows.append(
            Delivery(message=message, recipient=route.recipient, kind=kind, sequence=sequence, next_attempt_at=due)
        )
    return Delivery.objects.bulk_create(rows, ignore_conflicts=False)


def _open(event: Event, route: Route) -> list[Delivery]:
    now = event.at
    muted = event.maintenance and event.severity != Severity.CRITICAL
    try:
        with transaction.atomic():
            message = Message.objects.create(
                **route.owner,
                dedup_key=event.dedup_key,
                kind=event.kind,
                severity=event.severity,
                subject=event.subject,
                text=event.text,
                link=event.link,
                first_event=event,
                last_event=event,
                maintenance=event.maintenance,
                muted=muted,
                opened_at=now,
                last_event_at=now,
                next_repeat_at=now + timedelta(seconds=route.repeat) if route.repeat and not muted else None,
                **Message.scope_values(event.scope),
            )
    except IntegrityError:  # another process opened it a moment ago: join that one
        current = _current(route, event.dedup_key)
        if current is None:
            raise
        _join(current, event)
        return []
    _link(message, event)
    metrics.MESSAGES.labels(outcome="muted" if muted else "opened").inc()
    if muted:
        return []
    return _deliveries(message, route, DeliveryKind.FIRST, 0, now + timedelta(seconds=route.window))


def _link(message: Message, event: Event) -> None:
    """Add the event to the message's events: one INSERT (``events.add`` reads the existing links first; an event
    is routed once, so it is never linked twice)."""
    Message.events.through.objects.create(message_id=message.pk, event_id=event.pk)


def _current(route: Route, key: str) -> Message | None:
    return Message.objects.select_for_update().filter(**route.owner, dedup_key=key, state=MessageState.OPEN).first()


def _join(message: Message, event: Event) -> None:
    Message.objects.filter(pk=message.pk).update(
        count=F("count") + 1, last_event=event, last_event_at=event.at, severity=event.severity
    )
    _link(message, event)
    metrics.MESSAGES.labels(outcome="grouped").inc()


def _resolve(message: Message, event: Event, route: Route, *, announce: bool) -> list[Delivery]:
    Message.objects.filter(pk=message.pk).update(
        state=MessageState.RESOLVED, resolved_at=event.at, last_event=event, next_repeat_at=None
    )
    _link(message, event)
    if not announce or message.muted or not route.notify_resolved:
        return []
    first_due = Delivery.objects.filter(message=message, kind=DeliveryKind.FIRST).values_list(
        "next_attempt_at", flat=True
    )
    due = max([event.at, *first_due])  # never before the first message it resolves
    metrics.MESSAGES.labels(outcome="resolved").inc()
    return _deliveries(message, route, DeliveryKind.RESOLVED, 0, due)


def group(event: Event, route: Route) -> list[Delivery]:
    """Apply one event to one route's open message of its key (see the module docstring)."""
    with transaction.atomic(savepoint=False):  # inside routing's transaction: no savepoint of its own
        current = _current(route, event.dedup_key)
        if event.resolves:
            return _resolve(current, event, route, announce=True) if current is not None else []
        if current is None:
            return _open(event, route)
        quiet_for = (event.at - current.last_event_at).total_seconds()
        if route.repeat or quiet_for <= route.window:
            _join(current, event)
            return []
        _resolve(current, event, route, announce=False)  # quiet longer than the window: a new condition
        return _open(event, route)


def store(domain_event: DomainEvent) -> Event:
    """Store the event as emitted (not yet routed)."""
    window = calendar.in_maintenance(domain_event.scope, domain_event.at)
    event = Event.objects.create(
        kind=domain_event.kind[:100],
        severity=str(domain_event.severity),
        subject=domain_event.subject[:300],
        text=domain_event.text,
        link=domain_event.link[:500],
        dedup_key=domain_event.key[:300],
        resolves=domain_event.resolves,
        at=domain_event.at,
        maintenance=window is not None,
        **Event.scope_values(domain_event.scope),
    )
    metrics.EVENTS.labels(kind=event.kind, severity=event.severity).inc()
    return event


def route(event_id: int) -> int:
    """Route the stored event once (see the module docstring), after the earlier unrouted events of its key;
    returns how many events this call routed (0: routed already, or gone)."""
    key = Event.objects.filter(pk=event_id).values("dedup_key")[:1]
    waiting = Event.objects.filter(dedup_key=Subquery(key), routed_at__isnull=True, pk__lte=event_id)
    pks = list(waiting.order_by("pk").values_list("pk", flat=True))
    view = cache.current() if pks else None  # read once per task, outside the routing transactions
    return sum(_route_one(pk, view) for pk in pks)


def _route_one(event_id: int, view: cache.RoutingSet | None = None) -> int:
    with transaction.atomic():
        now = datetime.now(UTC)
        event = _claim_event(event_id, now)
        if event is None:
            return 0  # routed by another call (a task delivered twice, the tick's re-enqueue)
        created: list[Delivery] = []
        for target in resolving_routes(event, view) if event.resolves else routes_for(event, view):
            created += group(event, target)
        if event.resolves:  # conditions of routes that no longer match (a user lost access): closed silently
            Message.objects.filter(dedup_key=event.dedup_key, state=MessageState.OPEN).update(
                state=MessageState.RESOLVED, resolved_at=event.at, next_repeat_at=None
            )
        ids = [(d.pk, d.next_attempt_at) for d in created]
        transaction.on_commit(lambda: _enqueue(ids))
        if opened_or_resolved(event, created):
            transaction.on_commit(_dashboard.note)
    metrics.ROUTING_DELAY.observe(max(0.0, (now - event.at).total_seconds()))
    return 1


def _claim_event(event_id: int, now: datetime) -> Event | None:
    """Mark the event routed if it is not (compare-and-swap, its row locked until commit) and return it, in one
    statement."""
    table = Event._meta.db_table
    sql = f'UPDATE "{table}" SET "routed_at" = %s WHERE "id" = %s AND "routed_at" IS NULL RETURNING *'  # noqa: S608
    return next(iter(Event.objects.raw(sql, [now, event_id])), None)


def record(domain_event: DomainEvent) -> Event:
    """Store the event and route it in this process (its deliveries are enqueued after commit)."""
    event = store(domain_event)
    route(event.pk)
    return event


def unrouted(older_than: timedelta = timedelta(seconds=60), now: datetime | None = None) -> list[int]:
    """Events stored but still unrouted a minute later (their task was lost, or the emitter died before enqueuing);
    not sooner, so a backlog the workers are draining is not enqueued twice."""
    moment = now or datetime.now(UTC)
    waiting = Event.objects.filter(routed_at__isnull=True, at__lte=moment - older_than).order_by("pk")
    return list(waiting.values_list("pk", flat=True)[:1000])


def opened_or_resolved(event: Event, created: list[Delivery]) -> bool:
    """Whether the dashboard's open conditions may have changed (not for an event that only joined a message)."""
    return event.resolves or bool(created) or event.maintenance


class _Coalesced:
    """The dashboard's re-render after routing, at most once per ``seconds``: a burst of a thousand conditions
    opened is a few publishes, not one per event (the last change is always announced)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.pending = False

    def note(self) -> None:
        with self.lock:
            if self.pending:
                return
            self.pending = True
        timer = threading.Timer(self.seconds, self._fire)
        timer.daemon = True
        timer.start()

    def _fire(self) -> None:
        with self.lock:
            self.pending = False
        # Straight to the publisher: ``dashboard_changed`` waits for a commit, which would open a database
        # connection in this short-lived thread (never returned to the pool).
        send_many([(DASHBOARD, {"reason": "notifications routed"})])


_dashboard = _Coalesced(0.25)


def _task(name: str) -> Any:
    """This app's task ``name`` from Celery's registry (tasks import this module; this module does not import
    tasks). A web process has not imported the tasks modules yet: they are loaded as a worker loads them."""
    from celery import current_app

    if name not in current_app.tasks:
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def _enqueue(ids: list[tuple[int, datetime]]) -> None:
    deliver = _task("notifications.deliver")
    for pk, due in ids:
        deliver.apply_async(args=[pk], countdown=countdown(due))


def sink(domain_event: DomainEvent) -> None:
    """The sink registered with :func:`apps.core.domain_events.sink_register`: store, then route in a worker."""
    if getattr(settings, "NOTIFICATIONS_ROUTE_INLINE", False):
        record(domain_event)
        return
    event = store(domain_event)
    # At once: sinks run after the emitter's commit.
    transaction.on_commit(lambda: _task("notifications.route").delay(event.pk))


__all__ = ["Channel", "Route", "group", "record", "route", "routes_for", "sink", "store", "unrouted"]
