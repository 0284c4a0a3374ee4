"""Occurrences of calendar entries, computed in each entry's own zone and bounded so no rule can make us work hard.

Bounds: only DAILY, WEEKLY, MONTHLY and YEARLY rules (SECONDLY, MINUTELY and HOURLY are refused); no BYSECOND; no
DTSTART/EXDATE/RDATE inside the rule (the entry's start is the DTSTART); COUNT at most ``MAX_COUNT``; at most
``MAX_PER_DAY`` occurrences a day on average over the first ``DENSITY_SAMPLE`` (``BYHOUR=0,...,23;BYMINUTE=...``
is refused); a rule that never occurs is refused (found cheaply, see ``_occurs_at_all``: dateutil would otherwise
walk day after day to the year 9999 on every query), and so is one with no occurrence within ``FIRST_WITHIN`` of
the start; a query returns at most ``MAX_PER_QUERY`` occurrences.

Time: each occurrence keeps the local wall time of the start in the entry's zone (dateutil keeps the tzinfo and
replaces the fields); a wall time that does not exist on a spring-forward day is read with the offset before the
change (02:30 becomes 03:30 summer time), an ambiguous one on a fall-back day as the first (summer) one. The
duration is elapsed time: an occurrence ends ``duration`` real seconds after it starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil import rrule as du

from apps.core.errors import DomainError

MAX_COUNT = 1000
MAX_PER_DAY = 4
DENSITY_SAMPLE = 60
FIRST_WITHIN = timedelta(days=2 * 366)
MAX_PER_QUERY = 500
MAX_DURATION_MINUTES = 90 * 24 * 60
MAX_RULE_LENGTH = 300
EARLIEST_START = date(2000, 1, 1)
LATEST_START = date(2100, 1, 1)
ALLOWED_FREQ = {du.DAILY, du.WEEKLY, du.MONTHLY, du.YEARLY}
_RULE_TEXT = re.compile(r"^[A-Z]+=[A-Z0-9,+\-]+(;[A-Z]+=[A-Z0-9,+\-]+)*$")
_FORBIDDEN_PARTS = ("DTSTART", "EXDATE", "RDATE", "BYSECOND", "EXRULE")


@dataclass(frozen=True)
class Occurrence:
    starts: datetime  # aware, in the entry's zone
    ends: datetime  # starts + duration (elapsed), same zone

    def utc(self) -> tuple[datetime, datetime]:
        return self.starts.astimezone(UTC), self.ends.astimezone(UTC)


def zone_check(name: str) -> ZoneInfo:
    if not isinstance(name, str) or name not in available_timezones():
        raise DomainError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError(f"{name!r} is not an IANA time zone", field="timezone") from None


def parse(text: str, start: datetime) -> du.rrule | None:
    """The rule for ``text`` starting at ``start`` (aware, local), or None for a one-off; a DomainError on field
    ``rrule`` when the text is not a bounded RRULE."""
    text = (text or "").strip().upper()
    if text.startswith("RRULE:"):
        text = text[len("RRULE:") :]
    if not text:
        return None
    if len(text) > MAX_RULE_LENGTH or not _RULE_TEXT.match(text):
        raise DomainError("an RRULE value such as FREQ=WEEKLY;BYDAY=FR (one rule, no DTSTART)", field="rrule")
    if any(part in text for part in _FORBIDDEN_PARTS):
        raise DomainError("DTSTART, EXDATE, RDATE, EXRULE and BYSECOND are not accepted in a rule", field="rrule")
    try:
        rule = du.rrulestr(text, dtstart=start)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DomainError(f"not a valid RRULE: {exc}", field="rrule") from None
    if not isinstance(rule, du.rrule):
        raise DomainError("one RRULE only", field="rrule")
    if rule._freq not in ALLOWED_FREQ:  # dateutil exposes no public accessor
        raise DomainError("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY", field="rrule")
    count = rule._count
    if count is not None and not 1 <= count <= MAX_COUNT:
        raise DomainError(f"COUNT is from 1 to {MAX_COUNT}", field="rrule")
    _check_density(rule, start)
    return rule


def _occurs_at_all(rule: du.rrule, start: datetime) -> bool:
    """Does the rule ever occur? dateutil walks period by period to the year 9999 before it gives up on a rule that
    never matches (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30: seconds of work), so ask a copy started a multiple of 400
    years later — the Gregorian calendar, weekdays included, repeats every 400 years — close to 9999."""
    shift = 400 * ((datetime.max.year - start.year) // 400)
    probe = rule.replace(dtstart=start.replace(year=start.year + shift), until=None, count=None)
    return next(iter(probe), None) is not None


def _check_density(rule: du.rrule, start: datetime) -> None:
    """Refuse rules that never occur soon after the start, or that occur more than MAX_PER_DAY times a day."""
    if not _occurs_at_all(rule, start):
        raise DomainError("the rule never occurs", field="rrule")
    bounded = rule.replace(until=start + FIRST_WITHIN, count=None) if rule._count is None else rule
    sample: list[datetime] = []
    for occurrence in bounded:
        if occurrence - start > FIRST_WITHIN:
            break
        sample.append(occurrence)
        if len(sample) >= DENSITY_SAMPLE:
            break
    if not sample:
        raise DomainError("the rule has no occurrence in the two years after the start", field="rrule")
    if len(sample) >= DENSITY_SAMPLE:
        days = (sample[-1].date() - sample[0].date()).days + 1
        if len(sample) > MAX_PER_DAY * days:
            raise DomainError(f"at most {MAX_PER_DAY} occurrences a day", field="rrule")


def validate(*, rrule_text: str, start_date: date, start_time: time, timezone: str, duration_minutes: int) -> None:
    """Every check of an entry's timing (DomainError naming the field)."""
    zone = zone_check(timezone)
    if not isinstance(start_date, date) or not EARLIEST_START <= start_date < LATEST_START:
        raise DomainError("a date from 2000 to 2099", field="start_date")
    if not isinstance(start_time, time):
        raise DomainError("a local time (HH:MM)", field="start_time")
    if not isinstance(duration_minutes, int) or not 1 <= duration_minutes <= MAX_DURATION_MINUTES:
        raise DomainError(f"from 1 to {MAX_DURATION_MINUTES} minutes (90 days)", field="duration_minutes")
    parse(rrule_text, datetime.combine(start_date, start_time, tzinfo=zone))


def starts(rule: du.rrule | None, first: datetime) -> Iterator[datetime]:
    if rule is None:
        yield first
        return
    yield from rule


def between(
    rule: du.rrule | None,
    first: datetime,
    duration: timedelta,
    lo: datetime,
    hi: datetime,
    *,
    limit: int = MAX_PER_QUERY,
) -> list[Occurrence]:
    """The occurrences overlapping [lo, hi) (aware datetimes, any zone), at most ``limit`` (and MAX_PER_QUERY)."""
    found: list[Occurrence] = []
    limit = min(limit, MAX_PER_QUERY)
    for start in starts(rule, first):
        if start >= hi:
            break
        end = _end(start, duration)
        if end > lo:
            found.append(Occurrence(start, end))
            if len(found) >= limit:
                break
    return found


def _end(start: datetime, duration: timedelta) -> datetime:
    """Elapsed time: add in UTC, show in the entry's zone."""
    return (start.astimezone(UTC) + duration).astimezone(start.tzinfo)
