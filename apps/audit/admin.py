"""The audit trail in the admin: searchable, strictly read-only (no add, change or delete)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.models import AuditEvent
from apps.core.access import Action, is_platform_superuser, restrict, scopes_for


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("seq", "time", "actor_name", "action", "target_display", "outcome", "source", "client_ip")
    list_filter = ("outcome", "source", "actor_kind")
    search_fields = ("action", "actor_name", "target_display", "message", "request_id")
    date_hierarchy = None
    show_full_result_count = False  # no COUNT(*) over the whole trail
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def get_queryset(self, request: HttpRequest) -> Any:
        return restrict(request.user, Action.READ, super().get_queryset(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_platform_superuser(request.user) or bool(scopes_for(request.user, Action.READ))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
