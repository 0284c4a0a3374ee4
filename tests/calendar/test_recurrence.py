"""Occurrences in the entry's own zone, across DST, and the bounds on expansion (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.calendar import recurrence
from apps.core.errors import DomainError
from tests.support.work import BOUNDED_WORK, python_calls

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_weekly_berlin_freeze_keeps_its_local_time_across_the_spring_dst_change():
    first = datetime(2027, 3, 12, 18, 0, tzinfo=BERLIN)  # Fridays 18:00; DST starts Sunday 28 March 2027
    rule = recurrence.parse("FREQ=WEEKLY;BYDAY=FR", first)
    found = recurrence.between(rule, first, timedelta(hours=2), utc(2027, 3, 1), utc(2027, 4, 10))
    assert [o.utc()[0] for o in found] == [
        utc(2027, 3, 12, 17),  # CET: UTC+1
        utc(2027, 3, 19, 17),
        utc(2027, 3, 26, 17),
        utc(2027, 4, 2, 16),  # CEST: UTC+2, still 18:00 on the wall
        utc(2027, 4, 9, 16),
    ]
    assert all(o.starts.hour == 18 for o in found)


def test_a_weekly_freeze_keeps_its_local_time_across_the_autumn_change_too():
    first = datetime(2027, 10, 22, 18, 0, tzinfo=BERLIN)  # DST ends Sunday 31 October 2027
    rule = recurrence.parse("FREQ=WEEKLY;BYDAY=FR;COUNT=3", first)
    found = recurrence.between(rule, first, timedelta(hours=1), utc(2027, 10, 1), utc(2027, 12, 1))
    assert [o.utc()[0] for o in found] == [utc(2027, 10, 22, 16), utc(2027, 10, 29, 16), utc(2027, 11, 5, 17)]


def test_a_window_spanning_the_change_lasts_its_elapsed_duration():
    """Friday 18:00 + 60 h: 60 real hours, so it ends at 07:00 on the Monday wall clock (not 06:00)."""
    first = datetime(2027, 3, 26, 18, 0, tzinfo=BERLIN)
    (only,) = recurrence.between(None, first, timedelta(hours=60), utc(2027, 3, 1), utc(2027, 4, 1))
    starts, ends = only.utc()
    assert ends - starts == timedelta(hours=60)
    assert (starts, ends) == (utc(2027, 3, 26, 17), utc(2027, 3, 29, 5))
    assert only.ends.astimezone(BERLIN).hour == 7


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY",
        "FREQ=MINUTELY;INTERVAL=1",
        "FREQ=HOURLY",
        "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
        "FREQ=DAILY;BYMINUTE=0,5,10,15,20,25,30,35,40,45,50,55",
        "FREQ=DAILY;BYSECOND=1,2,3",
        "FREQ=DAILY;COUNT=100000",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # never: dateutil would walk day by day to the year 9999
        "FREQ=WEEKLY\nDTSTART:19000101T000000",
        "FREQ=WEEKLY;UNTIL=20300101T000000",  # UNTIL must be UTC when the start has a zone (RFC 5545)
        "NOT A RULE",
        "FREQ=WEEKLY;" + "BYDAY=MO;" * 60,
    ],
)
def test_a_hostile_or_absurd_rule_is_refused_with_bounded_work_naming_the_field(rule):
    with pytest.raises(DomainError) as refused:
        recurrence.parse(rule, datetime(2027, 1, 1, 9, tzinfo=BERLIN))
    assert refused.value.field == "rrule"
    work = python_calls(lambda: recurrence.parse(rule, datetime(2027, 1, 1, 9, tzinfo=BERLIN)), expected=DomainError)
    assert work < BOUNDED_WORK, work


def test_one_query_returns_at_most_the_cap_even_for_a_dense_allowed_rule():
    first = datetime(2026, 1, 1, 0, 0, tzinfo=BERLIN)
    rule = recurrence.parse("FREQ=DAILY;BYHOUR=0,6,12,18", first)  # 4 a day: the most allowed
    found = recurrence.between(rule, first, timedelta(hours=1), utc(2026, 1, 1), utc(2027, 1, 1))
    assert len(found) == recurrence.MAX_PER_QUERY
    assert len(recurrence.between(rule, first, timedelta(hours=1), utc(2026, 1, 1), utc(2027, 1, 1), limit=7)) == 7


def test_timing_checks_name_their_field():
    base = {"rrule_text": "", "start_date": datetime(2027, 1, 1).date(), "start_time": datetime(2027, 1, 1, 9).time()}
    with pytest.raises(DomainError) as bad_zone:
        recurrence.validate(**base, timezone="Mars/Olympus", duration_minutes=60)
    assert bad_zone.value.field == "timezone"
    with pytest.raises(DomainError) as too_long:
        recurrence.validate(**base, timezone="UTC", duration_minutes=recurrence.MAX_DURATION_MINUTES + 1)
    assert too_long.value.field == "duration_minutes"
