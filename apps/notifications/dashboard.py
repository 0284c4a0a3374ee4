"""Notifications on the dashboard: open (unresolved) conditions by severity within the viewer's scopes, among the
counters and first in "Needs attention" (the most recent few, each linking to its latest event), re-rendered live
when a condition opens or resolves (routing publishes the dashboard topic)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.urls import reverse

from apps.core.access import Action, Scope, restrict
from apps.core.domain_events import Severity
from apps.core.selectors import ATTENTION_SHOWN, AttentionCount, AttentionItem, AttentionSection
from apps.notifications.models import Message, MessageState

SHOWN = (Severity.CRITICAL, Severity.ERROR, Severity.WARNING)
RECENT_READ = ATTENTION_SHOWN * 4  # open messages read to find the few most recent distinct conditions


def _open_by_severity(viewer: Any) -> dict[str, int]:
    """One query: distinct open deduplication keys (a condition routed by two rules counts once) by severity."""
    rows = (
        restrict(viewer, Action.READ, Message.objects.filter(state=MessageState.OPEN))
        .values("severity")
        .annotate(n=Count("dedup_key", distinct=True))
    )
    return {row["severity"]: row["n"] for row in rows}


def counters(viewer: Any) -> list[dict[str, Any]]:
    found = _open_by_severity(viewer)
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


def attention(viewer: Any) -> AttentionSection:
    """Two queries: the counts by severity, then the most recent open messages (a condition routed by several
    rules or subscriptions is listed once)."""
    found = _open_by_severity(viewer)
    url = reverse("notifications:events")
    counts = tuple(
        AttentionCount(severity.value, found.get(severity, 0), severity.value, f"{url}?state=open&severity={severity}")
        for severity in SHOWN
    )
    total = sum(c.value for c in counts)
    items: list[AttentionItem] = []
    if total:
        recent = (
            restrict(viewer, Action.READ, Message.objects.filter(state=MessageState.OPEN, severity__in=SHOWN))
            .order_by("-last_event_at", "-id")
            .values(
                "dedup_key",
                "severity",
                "subject",
                "kind",
                "count",
                "muted",
                "last_event_id",
                "last_event_at",
                "scope_kind",
                "scope_cluster",
                "scope_namespace",
                "scope_application",
            )[:RECENT_READ]
        )
        seen: set[str] = set()
        for row in recent:
            if row["dedup_key"] in seen:
                continue
            seen.add(row["dedup_key"])
            scope = Scope(row["scope_kind"], row["scope_cluster"], row["scope_namespace"], row["scope_application"])
            times = f" · {row['count']} events" if row["count"] > 1 else ""
            muted = " · muted (maintenance)" if row["muted"] else ""
            items.append(
                AttentionItem(
                    label=row["subject"],
                    url=reverse("notifications:event", args=[row["last_event_id"]]),
                    detail=f"{row['kind']} · {scope.label()} · since {row['last_event_at']:%Y-%m-%d %H:%M} UTC"
                    f"{times}{muted}",
                    state=row["severity"],
                )
            )
            if len(items) == ATTENTION_SHOWN:
                break
    return AttentionSection(
        key="notifications",
        title="Open notification conditions",
        url=f"{url}?state=open",
        counts=counts,
        items=tuple(items),
        total=total,
        calm="No open condition within your scopes.",
    )


def register() -> None:
    from apps.core.selectors import register_attention, register_counters

    register_counters(counters)
    register_attention(attention, order=10)
