"""API URLs of compliance, under /api/v1/compliance/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.compliance.api.views import ResultViewSet, SummaryView

router = SimpleRouter()
router.register("results", ResultViewSet, basename="compliance-result")
urlpatterns = [
    *router.urls,
    path("summary/", SummaryView.as_view(), name="compliance-summary"),
]
