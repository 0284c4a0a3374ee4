"""API URLs of cron, under /api/v1/cron/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.cron.api.declared import DeclaredJobsView
from apps.cron.api.views import JobViewSet, PreviewView, RunViewSet

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="cron-job")
router.register("runs", RunViewSet, basename="cron-run")
urlpatterns = [
    *router.urls,
    path("preview/", PreviewView.as_view(), name="cron-preview"),
    path("declared/", DeclaredJobsView.as_view(), name="cron-declared"),
]
