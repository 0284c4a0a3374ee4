"""Portal URLs of the scaler, under /scaling/."""

from __future__ import annotations

from django.urls import path

from apps.scaler import views

urlpatterns = [
    path("", views.fleet, name="scaling-fleet"),
    path("table/", views.fleet_table, name="scaling-fleet-table"),
    path("pause/", views.global_pause, name="scaling-pause"),
    path("applications/<int:application_id>/", views.application_scaling, name="scaling-application"),
    path("applications/<int:application_id>/decisions/", views.decisions_fragment, name="scaling-decisions"),
    path("applications/<int:application_id>/metrics/", views.metrics_fragment, name="scaling-metrics"),
    path("applications/<int:application_id>/kill-switch/", views.kill_switch, name="scaling-kill-switch"),
    path("applications/<int:application_id>/replay/", views.replay_view, name="scaling-replay"),
]
