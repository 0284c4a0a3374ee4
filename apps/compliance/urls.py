"""Portal URLs of compliance, under /compliance/ (namespace ``compliance``)."""

from __future__ import annotations

from django.urls import path

from apps.compliance.views import results

app_name = "compliance"
urlpatterns = [
    path("", results.result_list, name="results"),
    path("table/", results.result_table, name="results-table"),
]
