"""The audit trail in the admin: searchable, strictly read-only (no add, change or delete)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.admin_mixins import ReadOnlyAdmin
from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "time", "actor_name", "action", "target_display", "outcome", "source", "client_ip")
    list_filter = ("outcome", "source", "actor_kind")
    search_fields = ("action", "actor_name", "target_display", "message", "request_id")
    date_hierarchy = None
    show_full_result_count = False  # no COUNT(*) over the whole trail
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)  # the list is already restricted to readable events
