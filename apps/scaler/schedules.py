"""Schedule windows: RFC 5545 recurrences in a time zone that raise the floor or lower the ceiling.

A window starts at each occurrence of its rule, in wall-clock time of its zone (a 08:00 business-hours window
opens at local 08:00 on both sides of a DST change) and lasts ``duration_minutes`` of wall-clock time. When
several windows are open, the one with the highest priority sets the limits (ties: the higher floor).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rruleset, rrulestr

from apps.core.errors import DomainError

UNBOUNDED = 1_000_000


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
        return {"min": self.min, "max": self.max, "window": self.window, "priority": self.priority,
                "opened_at": self.opened_at.isoformat()}  # fmt: skip


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)",
                          field="schedules") from None  # fmt: skip


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
    except (ValueError, TypeError, KeyError) as exc:
        raise DomainError(f"not a valid RRULE {text[:100]!r}: {exc}", field="schedules") from None
    if not isinstance(rule, (rrule, rruleset)):
        raise DomainError(f"not a valid RRULE {text[:100]!r}", field="schedules")
    return rule


def validate_window(*, rrule_text: str, timezone: str, duration_minutes: Any, min_replicas: Any,
                    max_replicas: Any, name: str) -> None:  # fmt: skip
    """Raise a DomainError on field ``schedules`` naming what is wrong with one window."""
    if not name or len(str(name)) > 100:
        raise DomainError("each window needs a name (at most 100 characters)", field="schedules")
    tz = zone(timezone)
    rule = parse_rule(rrule_text, tz, datetime.now(tz))
    if rule.after(datetime.now(tz) - timedelta(days=366)) is None:
        raise DomainError(f"window {name!r}: the rule never occurs any more", field="schedules")
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
    at_local = at.astimezone(tz)
    rule = parse_rule(window.rrule, tz, at_local)
    duration = timedelta(minutes=int(window.duration_minutes))
    # Wall-clock arithmetic on purpose: same tzinfo, so comparisons and "+ duration" use local time.
    start = rule.before(at_local, inc=True)
    if start is None:
        return None
    if at_local < start + duration:
        return start
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
