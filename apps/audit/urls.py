"""Portal URLs of the audit trail, under /audit/ (namespace ``audit``)."""

from __future__ import annotations

from django.urls import path

from apps.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.events, name="events"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("export.jsonl", views.export_jsonl, name="export-jsonl"),
    path("history/<str:target_type>/<str:target_id>/", views.history, name="history"),
]
