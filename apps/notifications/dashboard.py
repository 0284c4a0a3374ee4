"""Notifications on the dashboard: open (unresolved) conditions by severity within the viewer's scopes, re-counted
live when a message opens or resolves."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.urls import reverse

from apps.core.access import Action, restrict
from apps.core.domain_events import Severity
from apps.notifications.models import Message, MessageState

SHOWN = (Severity.CRITICAL, Severity.ERROR, Severity.WARNING)


def counters(viewer: Any) -> list[dict[str, Any]]:
    """One query: distinct open deduplication keys (a condition routed by two rules counts once) by severity."""
    rows = (
        restrict(viewer, Action.READ, Message.objects.filter(state=MessageState.OPEN))
        .values("severity")
        .annotate(n=Count("dedup_key", distinct=True))
    )
    found = {row["severity"]: row["n"] for row in rows}
    url = reverse("notifications:events")
    return [
        {
            "key": f"notifications_open_{severity}",
            "label": f"Open {severity} conditions",
            "value": found.get(severity, 0),
            "url": f"{url}?severity={severity}",
            "state": "warn" if found.get(severity) else "ok",
        }
        for severity in SHOWN
    ]


def register() -> None:
    from apps.core.selectors import register_counters

    register_counters(counters)
