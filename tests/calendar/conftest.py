"""Every calendar test leaves no entry behind in this process's in-memory calendar (other suites in the same
process must never see a freeze a calendar test made)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def calendar_clean(django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    from apps.calendar import cache
    from apps.calendar.models import CalendarEntry

    yield
    with django_db_blocker.unblock():
        CalendarEntry.objects.all().delete()
        cache.rebuild()
