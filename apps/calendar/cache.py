"""The calendar as automations ask it (:mod:`apps.core.calendar`), answered from memory.

Each process keeps the enabled entries with their parsed rules and the occurrences around now (from an entry's
duration before, ``HORIZON`` after). It is built on the first question, rebuilt after every entry write (the
writing service calls :func:`entries_changed`, which after commit rebuilds the writer's copy and publishes on
``icc:calendar:entries``; every process that has asked listens there) and at least every ``REFRESH_SECONDS``.
A question about a moment outside the precomputed span is answered from the parsed rules (no database either).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil import rrule as du

from apps.calendar import recurrence
from apps.calendar.models import CalendarEntry
from apps.core.access import Scope
from apps.core.calendar import Window, WindowKind
from apps.core.snapshot import ProcessSnapshot

logger = logging.getLogger(__name__)

CHANNEL = "icc:calendar:entries"
REFRESH_SECONDS = 30.0
HORIZON = timedelta(hours=1)


@dataclass(frozen=True)
class Prepared:
    entry: CalendarEntry
    rule: du.rrule | None
    near: tuple[recurrence.Occurrence, ...]  # the occurrences overlapping [built - duration, built + HORIZON)


@dataclass(frozen=True)
class Snapshot:
    entries: tuple[Prepared, ...]
    lo: datetime
    hi: datetime
    built_at: float


def _prepare(entry: CalendarEntry, now: datetime) -> Prepared | None:
    try:
        rule = recurrence.parse(entry.rrule, entry.first_start())
    except Exception as exc:  # stored before a bound was tightened: ignore it, say so
        logger.warning("calendar entry %s is not usable: %s", entry.pk, exc)
        return None
    near = recurrence.between(rule, entry.first_start(), entry.duration(), now - entry.duration(), now + HORIZON)
    return Prepared(entry, rule, tuple(near))


def build(now: datetime | None = None) -> Snapshot:
    moment = now or datetime.now(UTC)
    entries = CalendarEntry.objects.filter(enabled=True).order_by("id")
    prepared = tuple(p for p in (_prepare(e, moment) for e in entries) if p is not None)
    return Snapshot(prepared, moment, moment + HORIZON, time.monotonic())


_snapshot: ProcessSnapshot[Snapshot] = ProcessSnapshot(
    "calendar-cache", CHANNEL, lambda _number: build(), refresh_seconds=REFRESH_SECONDS
)


def rebuild() -> Snapshot:
    return _snapshot.rebuild()


def current() -> Snapshot:
    return _snapshot.current()


def occurrences_at(prepared: Prepared, snapshot: Snapshot, at: datetime) -> list[recurrence.Occurrence]:
    if snapshot.lo <= at < snapshot.hi:
        return list(prepared.near)
    entry = prepared.entry
    return recurrence.between(
        prepared.rule, entry.first_start(), entry.duration(), at - timedelta(microseconds=1), at + timedelta(seconds=1)
    )


def windows(scope: Scope, at: datetime, kind: WindowKind | None = None) -> list[Window]:
    """Every occurrence covering ``scope`` (read as coordinates) at ``at``, of ``kind`` (any when None)."""
    snapshot = current()
    found = []
    for prepared in snapshot.entries:
        entry = prepared.entry
        if (kind is not None and entry.kind != kind) or not entry.covers(scope):
            continue
        for occurrence in occurrences_at(prepared, snapshot, at):
            starts, ends = occurrence.utc()
            if starts <= at < ends:
                found.append(
                    Window(WindowKind(entry.kind), starts, ends, entry.reason, entry.owner, entry.pk, entry.scope())
                )
    return found


def provider(scope: Scope, at: datetime, kind: WindowKind) -> Window | None:
    """The registered answer: the covering window of ``kind`` that ends last."""
    found = windows(scope, at, kind)
    return max(found, key=lambda w: w.ends) if found else None


def entries_changed() -> None:
    """Call from every entry write: every process answers with it right after commit."""
    _snapshot.changed()
