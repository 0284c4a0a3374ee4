"""Traffic in the admin: read-only. Recommendations are decided on the application's Traffic tab and through the
API, whose services check configure rights on the application, audit and version the cache configuration."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.admin_mixins import ReadOnlyAdmin
from apps.traffic.models import CacheConfig, Recommendation


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdmin):
    list_display = ("application", "method", "route", "kind", "ttl_seconds", "state", "decided_by", "computed_at")
    list_filter = ("kind", "state")
    search_fields = ("route", "application__name", "decision_reason")
    list_select_related = ("application", "decided_by")


@admin.register(CacheConfig)
class CacheConfigAdmin(ReadOnlyAdmin):
    list_display = ("application", "version", "created_by", "created_at")
    search_fields = ("application__name",)
    list_select_related = ("application", "created_by")
