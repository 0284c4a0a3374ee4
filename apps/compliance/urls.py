"""Portal URLs of compliance, under /compliance/ (namespace ``compliance``)."""

from __future__ import annotations

from django.urls import path

from apps.compliance.views import admission, reports, results
from apps.compliance.views import exceptions as exception_views
from apps.compliance.views import fixes as fix_views
from apps.compliance.views import policies as policy_views
from apps.compliance.views import webhooks as webhook_views

app_name = "compliance"
urlpatterns = [
    path("", results.result_list, name="results"),
    path("table/", results.result_table, name="results-table"),
    path("scan/", results.scan_now, name="scan"),
    path("policies/", policy_views.policy_list, name="policies"),
    path("policies/new/", policy_views.policy_new, name="policy-new"),
    path("policies/<int:pk>/", policy_views.policy_detail, name="policy"),
    path("policies/<int:pk>/dry-run/", policy_views.policy_dry_run, name="policy-dry-run"),
    path("policies/<int:pk>/enable/", policy_views.policy_enable, {"enabled": True}, name="policy-enable"),
    path("policies/<int:pk>/disable/", policy_views.policy_enable, {"enabled": False}, name="policy-disable"),
    path("policies/<int:pk>/delete/", policy_views.policy_delete, name="policy-delete"),
    path("policies/<int:pk>/bindings/new/", policy_views.binding_new, name="binding-new"),
    path("bindings/<int:pk>/", policy_views.binding_detail, name="binding"),
    path("bindings/<int:pk>/delete/", policy_views.binding_delete, name="binding-delete"),
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
