"""Read-only admin: entries change through the services (audited), i.e. the portal and the API."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.calendar.models import CalendarEntry


@admin.register(CalendarEntry)
class CalendarEntryAdmin(admin.ModelAdmin):
    list_display = ("title", "kind", "rrule", "start_date", "start_time", "timezone", "duration_minutes", "enabled")
    list_filter = ("kind", "enabled", "scope_kind")
    search_fields = ("title", "reason", "owner")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
