"""Portal URLs of compliance, under /compliance/ (namespace ``compliance``)."""

from __future__ import annotations

from django.urls import path

from apps.compliance.views import admission, reports, results
from apps.compliance.views import exceptions as exception_views
from apps.compliance.views import fixes as fix_views
from apps.compliance.views import webhooks as webhook_views

app_name = "compliance"
urlpatterns = [
    path("", results.result_list, name="results"),
    path("table/", results.result_table, name="results-table"),
    path("reports/", reports.report, name="report"),
    # No trailing slash: the API server's client drops it, and a redirect would turn its POST into a GET.
    path("admission/<int:cluster_id>/<str:token>", admission.review, name="admission"),
    path("webhooks/", webhook_views.webhook_list, name="webhooks"),
    path("webhooks/<int:cluster_id>/", webhook_views.webhook_detail, name="webhook"),
    path("webhooks/<int:cluster_id>/configuration.yaml", webhook_views.webhook_download, name="webhook-download"),
    path("webhooks/<int:cluster_id>/<str:verb>/", webhook_views.webhook_action, name="webhook-action"),
    path("exceptions/", exception_views.exception_list, name="exceptions"),
    path("exceptions/new/", exception_views.exception_new, name="exception-new"),
    path("exceptions/<int:pk>/", exception_views.exception_detail, name="exception"),
    path("exceptions/<int:pk>/approve/", exception_views.exception_approve, name="exception-approve"),
    path("exceptions/<int:pk>/revoke/", exception_views.exception_revoke, name="exception-revoke"),
    path("results/<int:pk>/", fix_views.result_detail, name="result"),
    path("results/<int:pk>/fix/", fix_views.result_fix, name="result-fix"),
]
