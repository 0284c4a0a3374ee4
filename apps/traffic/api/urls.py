"""API URLs of traffic, under /api/v1/traffic/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.traffic.api.recommendations import CacheConfigViewSet, RecommendationViewSet
from apps.traffic.api.views import ApplicationsView, GraphView, RouteSeriesView, RoutesView

router = SimpleRouter()
router.register("recommendations", RecommendationViewSet, basename="traffic-recommendation")
router.register("cache-configs", CacheConfigViewSet, basename="traffic-cache-config")
urlpatterns = [
    *router.urls,
    path("applications/", ApplicationsView.as_view(), name="traffic-applications"),
    path("routes/", RoutesView.as_view(), name="traffic-routes"),
    path("routes/series/", RouteSeriesView.as_view(), name="traffic-route-series"),
    path("graph/", GraphView.as_view(), name="traffic-graph"),
]
