"""Portal URLs of compliance, under /compliance/ (namespace ``compliance``)."""

from __future__ import annotations

from django.urls import path

from apps.compliance.views import admission, results

app_name = "compliance"
urlpatterns = [
    path("", results.result_list, name="results"),
    path("table/", results.result_table, name="results-table"),
    path("admission/<int:cluster_id>/<str:token>/", admission.review, name="admission"),
]
