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
"""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun
from django.template.loader import render_to_string
from django.urls import reverse

from apps.core import topics
from apps.core.access import Action, restrict
from apps.core.domain_events import DomainEvent, sink_register
from apps.notifications import events
from apps.notifications.models import Event

ROUTE_TASK = "notifications.route"  # args: (event id,), returns how many events it routed
DELIVER_TASK = "notifications.deliver"  # args: (delivery id,), returns the delivery's status (None: not ours)


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
    events.log_changed("event")


def task_done(sender: Any = None, args: Any = None, retval: Any = None, **extra: Any) -> None:
    """After a routing task that routed its event, or a delivery task that changed its delivery: the logs and the
    pages of the events concerned re-fetch."""
    name = getattr(sender, "name", "")
    if name not in (ROUTE_TASK, DELIVER_TASK) or not retval or not args:
        return
    if name == ROUTE_TASK:
        events.log_changed("routed", [int(args[0])])
        return
    touched = Event.objects.filter(messages__deliveries__pk=int(args[0])).values_list("pk", flat=True)
    events.log_changed("delivery", list(touched[: events.MAX_EVENT_TOPICS]))


def register() -> None:
    topics.register(events.LOG, authorize=authorize, render=render)
    sink_register("notifications.live", event_recorded)  # after "notifications" (registered first): it is stored
    task_postrun.connect(task_done, weak=False, dispatch_uid="notifications.live.task_done")
