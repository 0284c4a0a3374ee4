"""The calendar on the dashboard: the freezes and maintenance windows active now that the viewer may read (from the
in-memory calendar, one query for what the viewer reads), re-counted live when an entry changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.urls import reverse

from apps.calendar import cache, selectors
from apps.core.calendar import WindowKind


def counters(viewer: Any) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    snapshot = cache.current()
    active: dict[str, int] = {WindowKind.FREEZE: 0, WindowKind.MAINTENANCE: 0}
    live = [
        p
        for p in snapshot.entries
        if any(o.utc()[0] <= now < o.utc()[1] for o in cache.occurrences_at(p, snapshot, now))
    ]
    if live:
        readable = set(selectors.entries(viewer).filter(pk__in=[p.entry.pk for p in live]).values_list("pk", flat=True))
        for prepared in live:
            if prepared.entry.pk in readable:
                active[prepared.entry.kind] += 1
    url = reverse("calendar:calendar")
    return [
        {
            "key": "calendar_freezes",
            "label": "Active change freezes",
            "value": active[WindowKind.FREEZE],
            "url": url,
            "state": "warn" if active[WindowKind.FREEZE] else "ok",
        },
        {
            "key": "calendar_maintenance",
            "label": "Active maintenance windows",
            "value": active[WindowKind.MAINTENANCE],
            "url": url,
            "state": "warn" if active[WindowKind.MAINTENANCE] else "ok",
        },
    ]


def register() -> None:
    from apps.core.selectors import register_counters

    register_counters(counters)
