from __future__ import annotations

from django.urls import path

from apps.audit import views

urlpatterns = [
    path("", views.events, name="audit"),
    path("export.csv", views.export_csv, name="audit-export-csv"),
    path("export.jsonl", views.export_jsonl, name="audit-export-jsonl"),
    path("history/<str:target_type>/<str:target_id>/", views.history, name="audit-history"),
]
