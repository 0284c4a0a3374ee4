from __future__ import annotations

from django.urls import path

from apps.core import health, metrics, system, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("fragments/dashboard/counters/", views.dashboard_counters_fragment, name="dashboard-counters"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="prometheus-django-metrics"),
    path("system/", system.system_page, name="system"),
    path("<slug:name>/", views.area, name="area"),
]
