"""Change calendar entries: maintenance windows and change freezes at a scope.

An entry starts at a local wall time in an IANA time zone and lasts ``duration_minutes`` of elapsed time; with an
RRULE (RFC 5545) it recurs, each occurrence at the same local wall time (a weekly Friday 18:00 Berlin freeze
starts at 16:00 UTC in summer and 17:00 UTC in winter), and lasts the same elapsed time even when a DST change
falls inside it (a 24-hour window across the spring change is 24 real hours, so it ends an hour later on the
local clock). Expansion is bounded: see :mod:`apps.calendar.recurrence`.

The scope is stored as the other apps store theirs (kind + cluster id + namespace + application), compared whole.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models

from apps.core.access import Scope, ScopeKind
from apps.core.calendar import WindowKind
from apps.core.models import BaseModel


class EntryKind(models.TextChoices):
    FREEZE = WindowKind.FREEZE.value, "Change freeze"
    MAINTENANCE = WindowKind.MAINTENANCE.value, "Maintenance window"


class CalendarEntry(BaseModel):
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    title = models.CharField(max_length=200)
    rrule = models.CharField(max_length=300, blank=True)  # the RRULE value (FREQ=WEEKLY;BYDAY=FR); empty: one-off
    start_date = models.DateField()  # local wall time of the first occurrence ...
    start_time = models.TimeField()
    timezone = models.CharField(max_length=64, default="UTC")  # ... in this IANA zone
    duration_minutes = models.PositiveIntegerField()  # elapsed time, whatever DST does meanwhile
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices, default=ScopeKind.GLOBAL)
    scope_cluster = models.CharField(max_length=32, blank=True)  # a cluster id, as access control's scopes
    scope_namespace = models.CharField(max_length=253, blank=True)
    scope_application = models.CharField(max_length=253, blank=True)
    reason = models.TextField()
    owner = models.CharField(max_length=150)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("start_date", "start_time", "id")
        verbose_name_plural = "calendar entries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"

    def scope(self) -> Scope:
        return Scope(self.scope_kind, self.scope_cluster, self.scope_namespace, self.scope_application)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def first_start(self) -> datetime:
        """The first occurrence's start: the local wall time, aware in the entry's zone."""
        return datetime.combine(self.start_date, self.start_time, tzinfo=self.zone())

    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    def covers(self, asked: Scope) -> bool:
        """Rule: an entry applies to what is asked about (read as coordinates: cluster, namespace, application)
        when its scope covers them, as access control's scopes cover objects; a global question (no cluster)
        is answered by global entries only."""
        return self.scope().covers(asked.cluster, asked.namespace, asked.application)
