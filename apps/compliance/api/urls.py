"""API URLs of compliance, under /api/v1/compliance/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.compliance.api.exceptions import PolicyExceptionViewSet
from apps.compliance.api.fixes import ResultFixView
from apps.compliance.api.policies import BindingViewSet, PolicyViewSet
from apps.compliance.api.views import HistoryView, OverviewView, ReportView, ResultViewSet, ScanView, SummaryView
from apps.compliance.api.webhooks import WebhookViewSet

router = SimpleRouter()
router.register("results", ResultViewSet, basename="compliance-result")
router.register("policies", PolicyViewSet, basename="compliance-policy")
router.register("bindings", BindingViewSet, basename="compliance-binding")
router.register("exceptions", PolicyExceptionViewSet, basename="compliance-exception")
router.register("webhooks", WebhookViewSet, basename="compliance-webhook")
urlpatterns = [
    *router.urls,
    path("summary/", SummaryView.as_view(), name="compliance-summary"),
    path("scan/", ScanView.as_view(), name="compliance-scan"),
    path("history/", HistoryView.as_view(), name="compliance-history"),
    path("overview/", OverviewView.as_view(), name="compliance-overview"),
    path("reports/", ReportView.as_view(), name="compliance-reports"),
    path("results/<int:pk>/fix/", ResultFixView.as_view(), name="compliance-result-fix"),
]
