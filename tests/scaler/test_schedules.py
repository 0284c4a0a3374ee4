"""Schedule windows (pure, no database): RRULE windows in a real time zone, across DST changes, with priorities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from apps.core.errors import DomainError
from apps.scaler import engine, schedules


@dataclass
class Window:
    name: str
    rrule: str
    duration_minutes: int
    timezone: str = "Europe/Berlin"
    min_replicas: int | None = None
    max_replicas: int | None = None
    priority: int = 0


BUSINESS = Window("business hours", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8", 600, min_replicas=5)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "open_"),
    [
        # Before the spring change (CET, UTC+1): 08:00-18:00 local is 07:00-17:00 UTC.
        ("2026-03-27T06:59:59", False),
        ("2026-03-27T07:00:00", True),
        ("2026-03-27T16:59:59", True),
        ("2026-03-27T17:00:00", False),
        # After it (Sunday 2026-03-29; CEST, UTC+2): still 08:00-18:00 local, now 06:00-16:00 UTC.
        ("2026-03-30T05:59:59", False),
        ("2026-03-30T06:00:00", True),
        ("2026-03-30T15:59:59", True),
        ("2026-03-30T16:00:00", False),
        # Around the autumn change (Sunday 2026-10-25): Friday in CEST, Monday in CET.
        ("2026-10-23T06:00:00", True),
        ("2026-10-23T16:00:00", False),
        ("2026-10-26T06:30:00", False),
        ("2026-10-26T07:00:00", True),
        ("2026-10-26T16:59:00", True),
        ("2026-10-26T17:00:00", False),
        # The weekend of the change itself: closed.
        ("2026-03-29T09:00:00", False),
        ("2026-10-25T09:00:00", False),
    ],
)
def test_business_hours_stay_at_local_eight_across_dst_changes(instant, open_):
    limits = schedules.active_limits([BUSINESS], utc(instant))
    assert (limits is not None) == open_
    if limits is not None:
        assert limits.opened_at.hour == 8 and limits.opened_at.tzinfo is not None
        assert (limits.min, limits.window) == (5, "business hours")


def test_the_floor_raises_the_engine_limits_only_while_open():
    hard = engine.Limits(1, 10)
    during = schedules.active_limits([BUSINESS], utc("2026-03-30T06:00:00"))
    assert during is not None
    assert engine.intersect(hard, engine.Limits(during.min, during.max)) == engine.Limits(5, 10)
    assert schedules.active_limits([BUSINESS], utc("2026-03-30T05:59:00")) is None


def test_the_highest_priority_window_wins_when_windows_overlap():
    event = Window("launch", "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=30;BYHOUR=12", 120, min_replicas=20, priority=10)
    quiet = Window("lunch cap", "FREQ=DAILY;BYHOUR=12", 60, max_replicas=3, priority=1)
    both_open = utc("2026-03-30T10:30:00")  # 12:30 CEST
    limits = schedules.active_limits([BUSINESS, quiet, event], both_open)
    assert limits is not None and (limits.window, limits.min) == ("launch", 20)
    limits = schedules.active_limits([BUSINESS, quiet], both_open)
    assert limits is not None and (limits.window, limits.max) == ("lunch cap", 3)
    limits = schedules.active_limits([BUSINESS, quiet], utc("2026-03-30T11:30:00"))  # 13:30: the cap has closed
    assert limits is not None and limits.window == "business hours"


def test_a_dtstart_in_the_rule_is_read_in_the_window_zone():
    window = Window("every 2 days", "DTSTART:20260101T090000\nRRULE:FREQ=DAILY;INTERVAL=2", 30, min_replicas=2)
    assert schedules.active_limits([window], utc("2026-01-03T08:10:00")) is not None  # 09:10 CET, day 3
    assert schedules.active_limits([window], utc("2026-01-04T08:10:00")) is None  # day 4 is skipped


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rrule_text": "FREQ=SOMETIMES"}, "not a valid RRULE"),
        ({"rrule_text": ""}, "required"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"min_replicas": None, "max_replicas": None}, "set min_replicas"),
        ({"min_replicas": 5, "max_replicas": 2}, "exceeds"),
        ({"min_replicas": -1}, "min_replicas"),
    ],
)
def test_bad_windows_are_refused_naming_the_schedules_field(changes, message):
    values = {
        "rrule_text": "FREQ=DAILY;BYHOUR=8",
        "timezone": "Europe/Berlin",
        "duration_minutes": 60,
        "min_replicas": 2,
        "max_replicas": None,
        "name": "w",
        **changes,
    }
    with pytest.raises(DomainError) as caught:
        schedules.validate_window(**values)
    assert caught.value.field == "schedules"
    assert message in caught.value.message
