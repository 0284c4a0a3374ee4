"""Operators' admin for the scaler: read-only (policies change through the API, whose service validates them
against Prometheus and bumps their version); rows restricted and audited like everywhere."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.admin_mixins import ReadOnlyAdmin
from apps.scaler.models import Decision, ScalerSettings, ScalingPolicy, ScheduleWindow, Signal


class ScheduleWindowInline(admin.TabularInline):
    model = ScheduleWindow
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ScalingPolicy)
class ScalingPolicyAdmin(ReadOnlyAdmin):
    list_display = (
        "application",
        "name",
        "mode",
        "enabled",
        "min_replicas",
        "max_replicas",
        "status",
        "kill_switch",
        "version",
        "last_evaluated_at",
    )
    list_filter = ("mode", "status", "enabled", "kill_switch")
    search_fields = ("name", "application__name", "application__namespace")
    inlines = (ScheduleWindowInline,)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ("at", "application", "policy", "trigger", "current_replicas", "desired_replicas", "outcome")
    list_filter = ("outcome", "trigger")


@admin.register(Signal)
class SignalAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "application", "metric", "pod", "value", "at")


@admin.register(ScalerSettings)
class ScalerSettingsAdmin(ReadOnlyAdmin):
    list_display = ("paused", "paused_reason", "updated_at")
