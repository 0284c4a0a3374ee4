"""The calendar on the dashboard: the freezes and maintenance windows active now that the viewer may read (from the
in-memory calendar, one query for what the viewer reads), among the counters and in "Needs attention" (each with
its scope and end, linking to its entry), re-rendered live when an entry changes (the services publish the
dashboard topic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.urls import reverse

from apps.calendar import cache, selectors
from apps.calendar.models import CalendarEntry
from apps.core.calendar import WindowKind
from apps.core.selectors import ATTENTION_SHOWN, AttentionCount, AttentionItem, AttentionSection


def active(viewer: Any, now: datetime | None = None) -> list[tuple[CalendarEntry, datetime, datetime]]:
    """The entries active at ``now`` that the viewer may read, with the occurrence's start and end (UTC), ending
    first first. One query, only when something is active."""
    moment = now or datetime.now(UTC)
    snapshot = cache.current()
    live: list[tuple[CalendarEntry, datetime, datetime]] = []
    for prepared in snapshot.entries:
        for occurrence in cache.occurrences_at(prepared, snapshot, moment):
            starts, ends = occurrence.utc()
            if starts <= moment < ends:
                live.append((prepared.entry, starts, ends))
                break
    if not live:
        return []
    readable = set(selectors.entries(viewer).filter(pk__in=[e.pk for e, _, _ in live]).values_list("pk", flat=True))
    return sorted(((e, s, t) for e, s, t in live if e.pk in readable), key=lambda found: (found[2], found[0].pk))


def counters(viewer: Any) -> list[dict[str, Any]]:
    found = active(viewer)
    freezes = sum(1 for e, _, _ in found if e.kind == WindowKind.FREEZE)
    maintenance = sum(1 for e, _, _ in found if e.kind == WindowKind.MAINTENANCE)
    url = reverse("calendar:calendar")
    return [
        {
            "key": "calendar_freezes",
            "label": "Active change freezes",
            "value": freezes,
            "url": url,
            "state": "warn" if freezes else "ok",
        },
        {
            "key": "calendar_maintenance",
            "label": "Active maintenance windows",
            "value": maintenance,
            "url": url,
            "state": "warn" if maintenance else "ok",
        },
    ]


def attention(viewer: Any) -> AttentionSection:
    found = active(viewer)
    url = reverse("calendar:calendar")
    freezes = [f for f in found if f[0].kind == WindowKind.FREEZE]
    maintenance = [f for f in found if f[0].kind == WindowKind.MAINTENANCE]
    items = tuple(
        AttentionItem(
            label=f"{entry.get_kind_display()}: {entry.title}",
            url=reverse("calendar:entry", args=[entry.pk]),
            detail=f"{entry.scope().label()} · until {ends:%Y-%m-%d %H:%M} UTC · {entry.owner}",
            state="critical" if entry.kind == WindowKind.FREEZE else "info",
        )
        for entry, _, ends in [*freezes, *maintenance][:ATTENTION_SHOWN]
    )
    return AttentionSection(
        key="calendar",
        title="Change freezes and maintenance windows now",
        url=url,
        counts=(
            AttentionCount("freezes", len(freezes), "critical", url),
            AttentionCount("maintenance windows", len(maintenance), "info", url),
        ),
        items=items,
        total=len(found),
        calm="No freeze or maintenance window is active within your scopes.",
    )


def register() -> None:
    from apps.core.selectors import register_attention, register_counters

    register_counters(counters)
    register_attention(attention, order=30)
