"""Writes on calendar entries: ``entry_<action>(*, ..., by)``.

Rule: configuring an entry needs the configure right at the entry's scope (global entries: a global grant), both
for the scope it has and, on update, for the scope it moves to. Each write is audited (``calendar.entry.*``) and
after commit every process's calendar follows (:func:`apps.calendar.cache.entries_changed`).
"""

from __future__ import annotations

from datetime import date, time
from typing import Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.calendar import recurrence
from apps.calendar.cache import entries_changed
from apps.calendar.models import CalendarEntry, EntryKind
from apps.clusters.models import Cluster
from apps.core.access import Action, Scope, can_at
from apps.core.errors import DomainError, ForbiddenError
from apps.core.events import dashboard_changed
from apps.core.scopes import scope_from

EDITABLE = (
    "kind",
    "title",
    "rrule",
    "start_date",
    "start_time",
    "timezone",
    "duration_minutes",
    "reason",
    "owner",
    "enabled",
)


def _check(by: Any, scope: Scope) -> None:
    if by is not None and not can_at(by, Action.CONFIGURE, scope):
        raise ForbiddenError("your role does not allow configuring the calendar here")


def _known_cluster(scope: Scope) -> None:
    """Checked after the rights, so nobody learns which cluster ids exist."""
    if scope.cluster and not (scope.cluster.isdigit() and Cluster.objects.filter(pk=int(scope.cluster)).exists()):
        raise DomainError(f"no cluster with id {scope.cluster!r}", field="scope_cluster")


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("kind") not in EntryKind.values:
        raise DomainError("freeze or maintenance", field="kind")
    for name, limit in (("title", 200), ("owner", 150), ("reason", 5000)):
        text = values.get(name)
        if not isinstance(text, str) or not text.strip() or len(text) > limit:
            raise DomainError(f"required, at most {limit} characters", field=name)
        values[name] = text.strip()
    values["rrule"] = str(values.get("rrule") or "").strip().upper().removeprefix("RRULE:")
    if not isinstance(values.get("start_date"), date):
        raise DomainError("a date (YYYY-MM-DD)", field="start_date")
    if not isinstance(values.get("start_time"), time):
        raise DomainError("a local time (HH:MM)", field="start_time")
    values["start_time"] = values["start_time"].replace(tzinfo=None)
    recurrence.validate(
        rrule_text=values["rrule"],
        start_date=values["start_date"],
        start_time=values["start_time"],
        timezone=values.get("timezone") or "",
        duration_minutes=values.get("duration_minutes"),  # type: ignore[arg-type]
    )
    values["enabled"] = bool(values.get("enabled", True))
    return values


def _changed(entry: CalendarEntry, verb: str) -> None:
    """After commit: every process's calendar follows, then open dashboards re-count their active windows."""
    entries_changed()
    dashboard_changed(f"calendar entry {entry.title} {verb}")


def _audit(entry: CalendarEntry, verb: str, *, changes: dict[str, Any] | None = None) -> None:
    scope = entry.scope()
    audit_record(
        action=f"calendar.entry.{verb}",
        target=entry,
        message=entry.reason[:500],
        changes=changes,
        metadata={"kind": entry.kind, "title": entry.title, "rrule": entry.rrule, "timezone": entry.timezone},
        scope={k: v for k, v in (("cluster", scope.cluster), ("namespace", scope.namespace)) if v}
        | {k: v for k, v in (("application", scope.application),) if v},
    )


def entry_create(*, by: Any = None, **values: Any) -> CalendarEntry:
    """A new freeze or maintenance window (configure at its scope)."""
    scope = scope_from(values)
    _check(by, scope)
    _known_cluster(scope)
    fields = _clean({name: values.get(name) for name in EDITABLE if name in values})
    with transaction.atomic():
        entry = CalendarEntry.objects.create(
            **fields,
            scope_kind=scope.kind,
            scope_cluster=scope.cluster,
            scope_namespace=scope.namespace,
            scope_application=scope.application,
            created_by=by if getattr(by, "is_authenticated", False) else None,
        )
        _audit(entry, "create")
        _changed(entry, "created")
    return entry


def entry_update(entry: CalendarEntry, *, by: Any = None, **values: Any) -> CalendarEntry:
    """Change an entry (configure at the scope it has and at the one it moves to)."""
    _check(by, entry.scope())
    scope_given = any(name.startswith("scope_") for name in values)
    scope = scope_from(values) if scope_given else entry.scope()
    _check(by, scope)
    _known_cluster(scope)
    before = {name: getattr(entry, name) for name in EDITABLE}
    fields = _clean({**before, **{name: values[name] for name in EDITABLE if name in values}})
    with transaction.atomic():
        locked = CalendarEntry.objects.select_for_update().get(pk=entry.pk)
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.scope_kind, locked.scope_cluster = scope.kind, scope.cluster
        locked.scope_namespace, locked.scope_application = scope.namespace, scope.application
        locked.save()
        changes = {n: [str(before[n]), str(fields[n])] for n in EDITABLE if str(before[n]) != str(fields[n])}
        _audit(locked, "update", changes=changes)
        _changed(locked, "changed")
    return locked


def entry_delete(entry: CalendarEntry, *, by: Any = None) -> None:
    _check(by, entry.scope())
    with transaction.atomic():
        _audit(entry, "delete")
        CalendarEntry.objects.filter(pk=entry.pk).delete()
        _changed(entry, "deleted")
