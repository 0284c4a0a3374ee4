"""Portal URLs of the scaler, under /scaler/ (namespace ``scaler``)."""

from __future__ import annotations

from django.urls import path

from apps.scaler import views

app_name = "scaler"
urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("table/", views.fleet_table, name="fleet-table"),
    path("pause/", views.global_pause, name="pause"),
    path("applications/<int:application_id>/", views.application_scaling, name="application"),
    path("applications/<int:application_id>/decisions/", views.decisions_fragment, name="decisions"),
    path("applications/<int:application_id>/metrics/", views.metrics_fragment, name="metrics"),
    path("applications/<int:application_id>/kill-switch/", views.kill_switch, name="kill-switch"),
    path("applications/<int:application_id>/replay/", views.replay_view, name="replay"),
]
