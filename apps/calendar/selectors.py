"""Reads of the calendar, restricted to what the viewer may read.

Rule: a viewer reads the entries inside the scopes where they may read (as every scoped row), and also the
entries *above* those scopes that therefore affect them: global entries (for anyone who may read somewhere) and
the entries of a whole cluster in which they read a namespace or an application.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from apps.calendar import cache, recurrence
from apps.calendar.models import CalendarEntry
from apps.core.access import Action, Scope, ScopeKind, can_at, is_platform_superuser, restrict, scopes_for
from apps.core.calendar import WindowKind

NEXT_WITHIN = timedelta(days=90)
NEXT_COUNT = 5


def entries(viewer: Any, *, kind: str = "", enabled: bool | None = None, search: str = "") -> QuerySet[CalendarEntry]:
    rows = restrict(viewer, Action.READ, CalendarEntry.objects.all())
    if not is_platform_superuser(viewer):
        above = Q(pk__in=[])
        read_scopes = scopes_for(viewer, Action.READ)
        if read_scopes:
            above |= Q(scope_kind=ScopeKind.GLOBAL)
        for scope in read_scopes:
            if scope.cluster:
                above |= Q(scope_kind=ScopeKind.CLUSTER, scope_cluster=scope.cluster)
        rows = rows | CalendarEntry.objects.filter(above)
    if kind:
        rows = rows.filter(kind=kind)
    if enabled is not None:
        rows = rows.filter(enabled=enabled)
    if search:
        rows = rows.filter(Q(title__icontains=search) | Q(reason__icontains=search) | Q(owner__icontains=search))
    return rows.distinct().order_by("start_date", "start_time", "id")


def entry(viewer: Any, pk: int) -> CalendarEntry | None:
    return entries(viewer).filter(pk=pk).first()


def can_configure(viewer: Any, entry: CalendarEntry) -> bool:
    return can_at(viewer, Action.CONFIGURE, entry.scope())


@dataclass(frozen=True)
class Shown:
    """One occurrence of an entry, for the calendar view, the API and the status answer."""

    entry: CalendarEntry
    starts: datetime  # UTC
    ends: datetime  # UTC

    def as_dict(self) -> dict[str, Any]:
        scope = self.entry.scope()
        return {
            "entry": self.entry.pk,
            "kind": self.entry.kind,
            "title": self.entry.title,
            "reason": self.entry.reason,
            "owner": self.entry.owner,
            "starts_at": self.starts.isoformat(),
            "ends_at": self.ends.isoformat(),
            "scope": {
                "kind": scope.kind,
                "cluster": scope.cluster,
                "namespace": scope.namespace,
                "application": scope.application,
            },
        }


def occurrences_of(
    row: CalendarEntry, lo: datetime, hi: datetime, limit: int = recurrence.MAX_PER_QUERY
) -> list[Shown]:
    try:
        rule = recurrence.parse(row.rrule, row.first_start())
    except Exception:  # an entry saved before a bound was tightened shows nothing rather than breaking the page
        return []
    found = recurrence.between(rule, row.first_start(), row.duration(), lo, hi, limit=limit)
    return [Shown(row, *o.utc()) for o in found]


def occurrences(rows: QuerySet[CalendarEntry] | list[CalendarEntry], lo: datetime, hi: datetime) -> list[Shown]:
    """The occurrences of ``rows`` overlapping [lo, hi), in time order, at most MAX_PER_QUERY in all."""
    shown: list[Shown] = []
    for row in rows:
        shown.extend(occurrences_of(row, lo, hi))
    shown.sort(key=lambda s: (s.starts, s.entry.pk))
    return shown[: recurrence.MAX_PER_QUERY]


def asked_scope(cluster: str = "", namespace: str = "", application: str = "") -> tuple[Scope, Scope]:
    """(the coordinates asked about, the scope the viewer must read at to ask)."""
    asked = Scope(ScopeKind.GLOBAL, cluster, namespace, application)
    if not cluster:
        return Scope(), Scope()
    if application:
        return asked, Scope(ScopeKind.APPLICATION, cluster, application=application)
    if namespace:
        return asked, Scope(ScopeKind.NAMESPACE, cluster, namespace)
    return asked, Scope(ScopeKind.CLUSTER, cluster)


def may_ask(viewer: Any, rights: Scope) -> bool:
    """Rule: anyone who reads somewhere may ask about global windows; about a place, whoever reads there."""
    if rights.kind == ScopeKind.GLOBAL:
        return is_platform_superuser(viewer) or bool(scopes_for(viewer, Action.READ))
    return can_at(viewer, Action.READ, rights)


def status(asked: Scope, now: datetime | None = None) -> dict[str, Any]:
    """Is ``asked`` frozen / in maintenance now, until when, and what comes next (from the in-memory calendar)."""
    moment = now or datetime.now(UTC)
    snapshot = cache.current()
    answer: dict[str, Any] = {"at": moment.isoformat(), "frozen": False, "in_maintenance": False}
    upcoming: list[Shown] = []
    by_id = {p.entry.pk: p.entry for p in snapshot.entries}
    for kind in (WindowKind.FREEZE, WindowKind.MAINTENANCE):
        window = cache.provider(asked, moment, kind)
        key = "freeze" if kind == WindowKind.FREEZE else "maintenance"
        answer[key] = Shown(by_id[window.entry_id], window.starts, window.ends).as_dict() if window else None
    answer["frozen"], answer["in_maintenance"] = answer["freeze"] is not None, answer["maintenance"] is not None
    for prepared in snapshot.entries:
        if prepared.entry.covers(asked):
            found = recurrence.between(
                prepared.rule,
                prepared.entry.first_start(),
                prepared.entry.duration(),
                moment,
                moment + NEXT_WITHIN,
                limit=10,
            )
            upcoming.extend(Shown(prepared.entry, *o.utc()) for o in found if o.utc()[0] > moment)
    upcoming.sort(key=lambda s: (s.starts, s.entry.pk))
    answer["next"] = [s.as_dict() for s in upcoming[:NEXT_COUNT]]
    return answer


def banner(asked: Scope) -> list[Shown]:
    """The active windows for a page's scope (the banner), from memory."""
    snapshot = cache.current()
    by_id = {p.entry.pk: p.entry for p in snapshot.entries}
    return [Shown(by_id[w.entry_id], w.starts, w.ends) for w in cache.windows(asked, datetime.now(UTC))]
