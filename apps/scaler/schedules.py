"""Schedule windows: RFC 5545 recurrences in a time zone that raise the floor or lower the ceiling.

A window starts at each occurrence of its rule, in wall-clock time of its zone (a 08:00 business-hours window
opens at local 08:00 on both sides of a DST change) and lasts ``duration_minutes`` of wall-clock time. When
several windows are open, the one with the highest priority sets the limits (ties: the higher floor).
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import (
    DAILY,
    HOURLY,
    MINUTELY,
    MONTHLY,
    SECONDLY,
    WEEKLY,
    YEARLY,
    rrule,
    rruleset,
    rrulestr,
    weekday,
)

from apps.core.errors import DomainError

UNBOUNDED = 1_000_000
# Bounds that keep every evaluation and validation to milliseconds, whatever the rule.
REFUSED_FREQUENCIES = {SECONDLY: "SECONDLY", MINUTELY: "MINUTELY"}
EARLIEST_DTSTART = datetime(2000, 1, 1)
LATEST_DTSTART_YEARS = 10  # a DTSTART at most this far ahead
HORIZON_YEARS = 10  # a window must open at least once within this many years (else: "never occurs")
MAX_OCCURRENCES_EXAMINED = 5000  # per window and evaluation (and the largest COUNT)


class WindowLike(Protocol):
    name: str
    rrule: str
    duration_minutes: int
    timezone: str
    min_replicas: int | None
    max_replicas: int | None
    priority: int


@dataclass(frozen=True)
class ScheduleLimits:
    """The limits an open window imposes, and which window."""

    min: int
    max: int
    window: str
    priority: int
    opened_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "max": self.max,
            "window": self.window,
            "priority": self.priority,
            "opened_at": self.opened_at.isoformat(),
        }


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)", field="schedules"
        ) from None


def _anchor(tz: ZoneInfo, at_local: datetime) -> datetime:
    """DTSTART of a rule without one: local midnight, 1 January of the previous year (INTERVAL counts from it)."""
    return datetime(at_local.year - 1, 1, 1, tzinfo=tz)


def parse_rule(text: str, tz: ZoneInfo, at_local: datetime) -> rrule | rruleset:
    """The recurrence (DTSTART in the rule is read in the window's zone; otherwise the anchor)."""
    text = (text or "").strip()
    if not text:
        raise DomainError("a recurrence rule is required", field="schedules")
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    try:
        if "DTSTART" in text.upper():
            rule = rrulestr(text, tzids=zone)
            if isinstance(rule, rrule) and rule._dtstart.tzinfo is None:
                rule = rule.replace(dtstart=rule._dtstart.replace(tzinfo=tz))
        else:
            rule = rrulestr(text, dtstart=_anchor(tz, at_local))
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise DomainError(f"not a valid RRULE {text[:100]!r}: {exc}", field="schedules") from None
    if not isinstance(rule, rrule):
        raise DomainError(f"not a valid RRULE {text[:100]!r} (one RRULE, optionally with a DTSTART)", field="schedules")
    _check_bounds(rule, at_local)
    return rule


def _check_bounds(rule: rrule, at_local: datetime) -> None:
    """Refuse what would make evaluation spin: sub-hourly frequencies, far-away starts, huge counts, BYEASTER."""
    if rule._freq in REFUSED_FREQUENCIES:
        raise DomainError(
            f"FREQ={REFUSED_FREQUENCIES[rule._freq]} is not allowed: a window recurs at most hourly", field="schedules"
        )
    if rule._byeaster:
        raise DomainError("BYEASTER is not supported", field="schedules")
    if rule._count is not None and rule._count > MAX_OCCURRENCES_EXAMINED:
        raise DomainError(f"COUNT is at most {MAX_OCCURRENCES_EXAMINED}", field="schedules")
    start = rule._dtstart.replace(tzinfo=None)
    if start < EARLIEST_DTSTART:
        raise DomainError(f"DTSTART must not be before {EARLIEST_DTSTART.year}", field="schedules")
    if start > at_local.replace(tzinfo=None) + timedelta(days=365 * LATEST_DTSTART_YEARS + 3):
        raise DomainError(f"DTSTART must be at most {LATEST_DTSTART_YEARS} years ahead", field="schedules")


def _naive(rule: rrule) -> tuple[rrule, tzinfo | None]:
    """The same rule in naive wall-clock time (as dateutil computes it anyway), and its zone."""
    zone_ = rule._dtstart.tzinfo
    until = rule._until
    if until is not None and until.tzinfo is not None:
        until = until.astimezone(zone_).replace(tzinfo=None)
    return rule.replace(dtstart=rule._dtstart.replace(tzinfo=None), until=until), zone_


def _period_start(rule: rrule, not_after: datetime) -> datetime | None:
    """The start of the latest period at or before ``not_after`` that the rule's INTERVAL reaches from DTSTART
    (None when that is DTSTART's own period): from there on, the rule yields exactly what it would have."""
    first, k, freq = rule._dtstart, rule._interval, rule._freq
    if freq == YEARLY:
        years = (not_after.year - first.year) // k * k
        return datetime(first.year + years, 1, 1) if years > 0 else None
    if freq == MONTHLY:
        months = (not_after.year * 12 + not_after.month - first.year * 12 - first.month) // k * k
        index = first.year * 12 + first.month - 1 + months
        return datetime(index // 12, index % 12 + 1, 1) if months > 0 else None
    if freq == WEEKLY:
        week = first.date() - timedelta(days=(first.weekday() - rule._wkst) % 7)
        weeks = (not_after.date() - week).days // 7 // k * k
        return datetime.combine(week + timedelta(weeks=weeks), datetime.min.time()) if weeks > 0 else None
    if freq == DAILY:
        days = (not_after.date() - first.date()).days // k * k
        return datetime.combine(first.date() + timedelta(days=days), datetime.min.time()) if days > 0 else None
    if freq == HOURLY:
        hour = first.replace(minute=0, second=0, microsecond=0)
        hours = int((not_after - hour).total_seconds() // 3600) // k * k
        return hour + timedelta(hours=hours) if hours > 0 else None
    return None


def _realigned(rule: rrule, not_after: datetime) -> rrule:
    """An equivalent rule (from ``not_after`` on) that starts at most one period before it, so that finding an
    occurrence does not walk every occurrence since DTSTART. A rule with COUNT counts from DTSTART: kept."""
    start = None if rule._count is not None else _period_start(rule, not_after)
    if start is None:
        return rule
    weekdays = [weekday(d) for d in rule._byweekday or ()] + [weekday(d, n) for d, n in rule._bynweekday or ()]
    return rrule(
        rule._freq,
        dtstart=start,
        interval=rule._interval,
        wkst=rule._wkst,
        until=rule._until,
        bysetpos=rule._bysetpos,
        bymonth=rule._bymonth,
        bymonthday=(rule._bymonthday + rule._bynmonthday) or None,
        byyearday=rule._byyearday,
        byweekno=rule._byweekno,
        byweekday=weekdays or None,
        byhour=rule._byhour,
        byminute=rule._byminute,
        bysecond=rule._bysecond,
    )


@functools.lru_cache(maxsize=64)
def _calendar_shift(first: int, last: int) -> int:
    """The most years Δ (``last + Δ <= 9999``) such that each year from ``first`` to ``last`` has the calendar of
    year + Δ (leap year, weekday of 1 January). dateutil gives up on a rule that never matches only at year 9999:
    evaluated Δ years later, the same rule yields the same wall-clock dates and gives up a few decades after
    ``last`` instead of thousands of years later."""
    for delta in range(MAXYEAR - last, 0, -1):
        if all(
            calendar.isleap(year) == calendar.isleap(year + delta)
            and date(year, 1, 1).weekday() == date(year + delta, 1, 1).weekday()
            for year in range(first, last + 1)
        ):
            return delta
    return 0


def _shift(moment: datetime, years: int) -> datetime:
    return moment.replace(year=moment.year + years)


def occurrences(rule: rrule, start: datetime, end: datetime) -> Iterator[datetime]:
    """Occurrences of a naive rule from ``start`` to ``end`` (naive, inclusive), oldest first; at most
    MAX_OCCURRENCES_EXAMINED occurrences are examined, and a rule that never matches costs milliseconds."""
    rule = _realigned(rule, start)
    if rule._until is not None and rule._until < rule._dtstart:
        return
    delta = _calendar_shift(max(rule._dtstart.year - 1, 1), min(end.year + 1, MAXYEAR))
    shifted_end = _shift(end, delta)
    if delta:
        until = rule._until
        rule = rule.replace(
            dtstart=_shift(rule._dtstart, delta), until=None if until is None or until > end else _shift(until, delta)
        )
    for examined, occurrence in enumerate(rule):
        if examined >= MAX_OCCURRENCES_EXAMINED or occurrence > shifted_end:
            return
        original = _shift(occurrence, -delta)
        if original >= start:
            yield original


def validate_window(
    *, rrule_text: str, timezone: str, duration_minutes: Any, min_replicas: Any, max_replicas: Any, name: str
) -> None:
    """Raise a DomainError on field ``schedules`` naming what is wrong with one window."""
    if not name or len(str(name)) > 100:
        raise DomainError("each window needs a name (at most 100 characters)", field="schedules")
    tz = zone(timezone)
    now = datetime.now(tz)
    rule, rule_zone = _naive(parse_rule(rrule_text, tz, now))
    since = now.astimezone(rule_zone or tz).replace(tzinfo=None) - timedelta(days=366)
    until = since + timedelta(days=366 + 365 * HORIZON_YEARS)
    if next(occurrences(rule, since, until), None) is None:
        raise DomainError(
            f"window {name!r}: the rule never occurs between {since:%Y-%m-%d} and {until:%Y-%m-%d}", field="schedules"
        )
    if (
        not isinstance(duration_minutes, int)
        or isinstance(duration_minutes, bool)
        or not 1 <= duration_minutes <= 525600
    ):
        raise DomainError(f"window {name!r}: duration_minutes must be 1 to 525600", field="schedules")
    for label, value in (("min_replicas", min_replicas), ("max_replicas", max_replicas)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise DomainError(f"window {name!r}: {label} must be a whole number >= 0", field="schedules")
    if min_replicas is None and max_replicas is None:
        raise DomainError(f"window {name!r}: set min_replicas, max_replicas or both", field="schedules")
    if min_replicas is not None and max_replicas is not None and min_replicas > max_replicas:
        raise DomainError(f"window {name!r}: min_replicas exceeds max_replicas", field="schedules")


def open_since(window: WindowLike, at: datetime) -> datetime | None:
    """The start of the window's occurrence that covers ``at`` (aware), or None when it is closed."""
    tz = zone(window.timezone)
    rule, rule_zone = _naive(parse_rule(window.rrule, tz, at.astimezone(tz)))
    rule_zone = rule_zone or tz
    duration = timedelta(minutes=int(window.duration_minutes))
    # Wall-clock arithmetic on purpose (naive local time): a window opens and lasts in local time across DST.
    at_wall = at.astimezone(rule_zone).replace(tzinfo=None)
    start = None
    for occurrence in occurrences(rule, at_wall - duration, at_wall):
        start = occurrence
    if start is not None and at_wall < start + duration:
        return start.replace(tzinfo=rule_zone)
    return None


def active_limits(windows: Iterable[WindowLike], at: datetime) -> ScheduleLimits | None:
    """The limits of the highest-priority window open at ``at`` (None when none is open)."""
    best: ScheduleLimits | None = None
    for window in windows:
        opened = open_since(window, at)
        if opened is None:
            continue
        candidate = ScheduleLimits(
            min=window.min_replicas if window.min_replicas is not None else 0,
            max=window.max_replicas if window.max_replicas is not None else UNBOUNDED,
            window=window.name,
            priority=window.priority,
            opened_at=opened,
        )
        if best is None or (candidate.priority, candidate.min) > (best.priority, best.min):
            best = candidate
    return best
