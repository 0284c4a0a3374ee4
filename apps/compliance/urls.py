"""Portal URLs of compliance, under /compliance/ (namespace ``compliance``)."""

from __future__ import annotations

from django.urls import path

from apps.compliance import views

app_name = "compliance"
urlpatterns = [
    path("", views.result_list, name="results"),
    path("table/", views.result_table, name="results-table"),
]
