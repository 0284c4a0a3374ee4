"""Live topics of the notifications pages and their payloads: the one place their names are built.

* ``notifications``: the event log (a new event, a message opened or resolved, a delivery's outcome).
* ``notifications.deliveries``: the delivery log (a delivery created, sent, failed, dead or retried).
* ``notifications.event.<id>``: one event's page (its messages and their deliveries).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from apps.core.events import publish_many

LOG = "notifications"
DELIVERIES = "notifications.deliveries"
EVENT = "notifications.event"  # prefix of one event's page
MAX_EVENT_TOPICS = 50  # a burst touching more events refreshes the lists only


def event(event_id: int) -> str:
    return f"{EVENT}.{event_id}"


class LogChanged(TypedDict):
    reason: str  # event, delivery, retry


def log_changed(reason: str, event_ids: Iterable[int] = ()) -> None:
    """After commit: the event log, the delivery log and the pages of ``event_ids`` re-fetch what they show."""
    payload: LogChanged = {"reason": reason}
    items: list[tuple[str, dict[str, Any]]] = [(LOG, dict(payload)), (DELIVERIES, dict(payload))]
    items += [(event(pk), dict(payload)) for pk in sorted(set(event_ids))[:MAX_EVENT_TOPICS]]
    publish_many(items)
