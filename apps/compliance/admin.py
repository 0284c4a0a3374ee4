"""Compliance in the admin: read-only. Policies, bindings, exceptions and webhook settings change through the portal
and the API, whose services check rights at the right scope, compile CEL, audit, refresh the admission webhook's
snapshot and re-scan; results are written by evaluation only."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.admin_mixins import ReadOnlyAdmin
from apps.compliance.models import AdmissionWebhook, Binding, Policy, PolicyException, Result


@admin.register(Policy)
class PolicyAdmin(ReadOnlyAdmin):
    list_display = ("key", "name", "kind", "severity", "enabled", "version", "updated_at")
    list_filter = ("kind", "enabled", "severity")
    search_fields = ("key", "name", "description")


@admin.register(Binding)
class BindingAdmin(ReadOnlyAdmin):
    list_display = ("policy", "check_id", "scope_kind", "scope_cluster", "scope_namespace", "scope_application", "mode")
    list_filter = ("mode", "scope_kind", "enabled")
    search_fields = ("policy__key", "check_id", "scope_namespace", "scope_application")
    list_select_related = ("policy",)


@admin.register(PolicyException)
class PolicyExceptionAdmin(ReadOnlyAdmin):
    list_display = ("policy", "check_id", "scope_kind", "owner", "expires_at", "approved_at", "revoked_at")
    list_filter = ("scope_kind",)
    search_fields = ("policy__key", "check_id", "owner", "reason")
    list_select_related = ("policy",)


@admin.register(Result)
class ResultAdmin(ReadOnlyAdmin):
    list_display = ("workload", "check_id", "status", "severity", "mode", "since")
    list_filter = ("status", "severity", "mode")
    search_fields = ("workload__name", "check_id", "namespace")
    list_select_related = ("workload",)


@admin.register(AdmissionWebhook)
class AdmissionWebhookAdmin(ReadOnlyAdmin):
    list_display = ("cluster", "failure_policy", "timeout_seconds", "applied_at")
    list_filter = ("failure_policy",)
    list_select_related = ("cluster",)
    exclude = ("token_generation",)
