from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.clusters.api.clusters import ClusterViewSet
from apps.clusters.api.identity import MachineIdentityView
from apps.clusters.api.observed import (
    ApplicationViewSet,
    NamespaceViewSet,
    NodeViewSet,
    PodViewSet,
    WarningEventViewSet,
    WorkloadViewSet,
)

router = SimpleRouter()
router.register("clusters", ClusterViewSet, basename="cluster")
router.register("namespaces", NamespaceViewSet, basename="namespace")
router.register("nodes", NodeViewSet, basename="node")
router.register("applications", ApplicationViewSet, basename="application")
router.register("workloads", WorkloadViewSet, basename="workload")
router.register("pods", PodViewSet, basename="pod")
router.register("warning-events", WarningEventViewSet, basename="warning-event")
urlpatterns = [*router.urls, path("identity/", MachineIdentityView.as_view(), name="machine-identity")]
