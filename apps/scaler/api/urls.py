from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.scaler.api.views import (
    AlertsView,
    DecisionViewSet,
    GlobalPauseView,
    KillSwitchView,
    ScalingPolicyViewSet,
    SignalsView,
)

router = SimpleRouter()
router.register("policies", ScalingPolicyViewSet, basename="scaling-policy")
router.register("decisions", DecisionViewSet, basename="scaling-decision")
urlpatterns = [
    *router.urls,
    path("applications/<int:pk>/kill-switch/", KillSwitchView.as_view(), name="scaler-kill-switch"),
    path("pause/", GlobalPauseView.as_view(), name="scaler-pause"),
    path("signals/", SignalsView.as_view(), name="scaler-signals"),
    path("alerts/", AlertsView.as_view(), name="scaler-alerts"),
]
