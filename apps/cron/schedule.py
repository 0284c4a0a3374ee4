"""Cron expressions: parsed and iterated with ``cronsim`` in the job's IANA time zone (pure, no database).

``cronsim`` follows Debian cron on DST nights: a job at a fixed local time runs once when the clocks go back
(where ``croniter`` fires twice) and at the first valid minute when they go forward (02:30 becomes 03:00);
wildcard-hour jobs follow real hours (23 on the spring day, 25 on the autumn day). Slots are returned in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from apps.core.errors import DomainError

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_EXPRESSION_LENGTH = 120
# A schedule must fire at least once in this long (a 31 February never would: cronsim searches for ever).
HORIZON = timedelta(days=366 * 5)


def expand(expression: str) -> str:
    """The 5-field form of ``expression`` (nicknames such as ``@hourly`` expanded)."""
    text = " ".join(expression.strip().split())
    return NICKNAMES.get(text.lower(), text)


def zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    if not name or len(name) > 64 or name not in _zones():
        raise DomainError(f"unknown time zone {name[:64]!r} (use an IANA name such as Europe/Berlin)", field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(f"unknown time zone {name[:64]!r}", field=field) from None


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones() | {"UTC"})
    return _ZONES


def validate(expression: str, tz: str = "UTC", *, field: str = "schedule") -> str:
    """The expanded expression, or a DomainError naming ``field`` (five fields, each in range, fires at all)."""
    if not isinstance(expression, str) or not expression.strip():
        raise DomainError("a schedule is required, e.g. '*/5 * * * *' or '@hourly'", field=field)
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise DomainError(f"a schedule is at most {MAX_EXPRESSION_LENGTH} characters", field=field)
    if expression.strip().lower() == "@reboot":
        raise DomainError("@reboot is not a schedule ICC can keep (there is no reboot)", field=field)
    text = expand(expression)
    if text.startswith("@"):
        raise DomainError(f"unknown nickname {text!r}; known: {', '.join(sorted(NICKNAMES))}", field=field)
    if len(text.split()) != 5:
        raise DomainError("a schedule has 5 fields: minute hour day-of-month month day-of-week", field=field)
    tzinfo = zone(tz)
    start = datetime.now(UTC).astimezone(tzinfo)
    try:
        first = next(iter(CronSim(text, start)))
    except (CronSimError, ValueError, IndexError, StopIteration) as exc:
        raise DomainError(f"invalid schedule {text!r}: {exc}", field=field) from None
    if first.astimezone(UTC) - start.astimezone(UTC) > HORIZON:
        raise DomainError(f"schedule {text!r} does not fire within five years", field=field)
    return text


def slots_after(expression: str, tz: str, after: datetime) -> Iterator[datetime]:
    """The schedule's slots strictly after ``after`` (aware), in UTC, in order, for ever."""
    tzinfo = ZoneInfo(tz)
    local = after.astimezone(tzinfo)
    for moment in CronSim(expand(expression), local):
        slot = moment.astimezone(UTC)
        if slot > after:  # cronsim works on wall-clock seconds; an ambiguous hour can repeat one
            yield slot


def next_slot(expression: str, tz: str, after: datetime) -> datetime:
    return next(slots_after(expression, tz, after))


def slots_between(expression: str, tz: str, after: datetime, until: datetime, *, limit: int) -> list[datetime]:
    """Up to ``limit`` slots in (after, until], oldest first."""
    found: list[datetime] = []
    for slot in slots_after(expression, tz, after):
        if slot > until or len(found) >= limit:
            break
        found.append(slot)
    return found


def explain(expression: str) -> str:
    """The schedule in words (cronsim's explanation), or the expression itself when it has none."""
    try:
        return str(CronSim(expand(expression), datetime.now(UTC)).explain())
    except Exception:  # explanations are a courtesy: an unusual expression still shows itself
        return expression


@dataclass(frozen=True)
class PreviewSlot:
    utc: datetime
    local: datetime
    offset_changed: bool  # the UTC offset differs from the previous slot's (a DST shift in between)

    @property
    def local_text(self) -> str:
        return self.local.strftime("%Y-%m-%d %H:%M %Z")


def preview(expression: str, tz: str, *, count: int = 10, after: datetime | None = None) -> list[PreviewSlot]:
    """The next ``count`` slots, each in the job's zone and UTC, marking where a DST shift lies before it."""
    tzinfo = zone(tz)
    start = after or datetime.now(UTC)
    out: list[PreviewSlot] = []
    previous = start.astimezone(tzinfo).utcoffset()
    for slot in slots_after(expression, tz, start):
        local = slot.astimezone(tzinfo)
        out.append(PreviewSlot(slot, local, local.utcoffset() != previous))
        previous = local.utcoffset()
        if len(out) >= count:
            break
    return out
