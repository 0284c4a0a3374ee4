"""Live topics of the notifications pages, and what publishes to them.

* ``notifications`` (the event log) and ``notifications.deliveries`` (the delivery log): any logged-in user may
  follow; the push is a trigger that makes the page re-fetch its table with its own filters and page, read through
  the selectors, so each viewer sees only the rows they may read.
* ``notifications.event.<id>`` (one event's page): whoever may read that event; each push re-fetches its messages
  and deliveries for that viewer.

Publishing (after commit, through :mod:`apps.notifications.events`): a domain-event sink registered after the
storing one announces each new event; the end of a ``notifications.route`` task that routed its event announces
the messages and deliveries it made (when routing runs inline, they are committed before the sink runs); the end
of each ``notifications.deliver`` task announces a delivery's outcome (sent, retried, dead); a dead letter's retry
announces itself. The routing and sending code stays free of portal concerns.

Coalesced: the sink and the task hooks only note what changed (no query, no publish in the emitter or the task); a
per-process thread publishes what gathered in the last ``COALESCE_SECONDS`` at once, with one query for the events
of all the deliveries noted, so a burst of a thousand tasks costs a few publishes a second, not one per task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from celery.signals import task_postrun
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse

from apps.core import topics
from apps.core.access import Action, restrict
from apps.core.domain_events import DomainEvent, sink_register
from apps.core.events import send_many
from apps.notifications import events
from apps.notifications.models import Event

ROUTE_TASK = "notifications.route"  # args: (event id,), returns how many events it routed
DELIVER_TASK = "notifications.deliver"  # args: (delivery id,), returns the delivery's status (None: not ours)
COALESCE_SECONDS = 0.25  # how long changes gather before one publish
logger = logging.getLogger(__name__)


class _Coalescer:
    """What changed since the last publish, and the thread that publishes it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.reasons: list[str] = []
        self.event_ids: set[int] = set()
        self.delivery_ids: set[int] = set()
        self.thread: threading.Thread | None = None

    def add(self, reason: str, event_ids: Iterable[int] = (), delivery_ids: Iterable[int] = ()) -> None:
        with self.cond:
            if reason not in self.reasons:
                self.reasons.append(reason)
            self.event_ids.update(event_ids)
            self.delivery_ids.update(delivery_ids)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="notifications-live", daemon=True)
                self.thread.start()
            self.cond.notify()

    def _take(self) -> tuple[list[str], set[int], set[int]]:
        with self.cond:
            while not self.reasons:
                self.cond.wait()
        time.sleep(COALESCE_SECONDS)  # let the rest of a burst gather
        with self.cond:
            taken = (self.reasons, self.event_ids, self.delivery_ids)
            self.reasons, self.event_ids, self.delivery_ids = [], set(), set()
        return taken

    def _run(self) -> None:
        while True:
            reasons, event_ids, delivery_ids = self._take()
            try:
                _publish(reasons, event_ids, delivery_ids)
            except Exception:  # a live view missing one update must never stop the next ones
                logger.exception("could not announce notification changes")


def _publish(reasons: list[str], event_ids: set[int], delivery_ids: set[int]) -> None:
    if delivery_ids:  # the pages of the events whose messages these deliveries belong to
        try:
            touched = Event.objects.filter(messages__deliveries__pk__in=sorted(delivery_ids)).values_list(
                "pk", flat=True
            )
            event_ids |= set(touched.distinct()[: events.MAX_EVENT_TOPICS])
        finally:
            connection.close()  # back to the pool: this thread holds none between publishes
    payload = {"reason": ",".join(reasons)}
    items: list[tuple[str, dict[str, Any]]] = [(events.LOG, dict(payload)), (events.DELIVERIES, dict(payload))]
    items += [(events.event(pk), dict(payload)) for pk in sorted(event_ids)[: events.MAX_EVENT_TOPICS]]
    send_many(items)  # not ``events.log_changed``: waiting for a commit would take a connection here


_pending = _Coalescer()


def _readable_event(user: Any, pk: int) -> bool:
    return restrict(user, Action.READ, Event.objects.filter(pk=pk)).exists()


def authorize(user: Any, name: str) -> bool:
    """Rule: the two logs, any logged-in user (rows are restricted when read); an event's page, its readers."""
    if name == events.DELIVERIES:
        return topics.authenticated(user, name)
    return topics.page_or_object(
        user, name, page=events.LOG, prefix=events.EVENT, readable=lambda pk: _readable_event(user, pk)
    )


def _refresh(target: str, url: str, include: str) -> str:
    return render_to_string("core/_refresh.html", {"target": target, "url": url, "include": include})


def render(user: Any, name: str, payload: dict[str, Any]) -> str:
    if name == events.LOG:
        return _refresh(
            "notification-events",
            reverse("notifications:events-table"),
            "#notification-filters, #notification-events-page",
        )
    if name == events.DELIVERIES:
        return _refresh(
            "notification-deliveries",
            reverse("notifications:deliveries-table"),
            "#delivery-filters, #notification-deliveries-page",
        )
    pk = topics.numbered(name, events.EVENT)
    if pk is None or not _readable_event(user, pk):
        return ""
    return _refresh("notification-event", reverse("notifications:event-messages", args=[pk]), "#notification-event")


def event_recorded(domain_event: DomainEvent) -> None:
    """The sink after the storing one: the logs re-fetch (the event is stored; routed too when routing is inline)."""
    transaction.on_commit(lambda: _pending.add("event"))


def task_done(sender: Any = None, args: Any = None, retval: Any = None, **extra: Any) -> None:
    """After a routing task that routed its event, or a delivery task that changed its delivery: the logs and the
    pages of the events concerned re-fetch."""
    name = getattr(sender, "name", "")
    if name not in (ROUTE_TASK, DELIVER_TASK) or not retval or not args:
        return
    if name == ROUTE_TASK:
        _pending.add("routed", event_ids=[int(args[0])])
        return
    _pending.add("delivery", delivery_ids=[int(args[0])])


def register() -> None:
    topics.register(events.LOG, authorize=authorize, render=render)
    sink_register("notifications.live", event_recorded)  # after "notifications" (registered first): it is stored
    task_postrun.connect(task_done, weak=False, dispatch_uid="notifications.live.task_done")
