from __future__ import annotations

from django.apps import AppConfig


class CalendarConfig(AppConfig):
    name = "apps.calendar"
    label = "calendar"
    verbose_name = "Change calendar"

    def ready(self) -> None:
        from apps.calendar import cache, dashboard
        from apps.calendar import models as m
        from apps.core.access import ScopedModel, register_scoped
        from apps.core.calendar import provider_register
        from apps.core.registry import nav_register

        register_scoped(
            m.CalendarEntry,
            ScopedModel(cluster="scope_cluster", namespace="scope_namespace", application="scope_application"),
        )
        provider_register("calendar", cache.provider)
        dashboard.register()  # active freezes and maintenance windows among the dashboard's counters
        nav_register("calendar", "Calendar", "/calendar/", order=70)
