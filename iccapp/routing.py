from __future__ import annotations

from django.urls import path

from apps.clusters.consumers import PodLogConsumer
from apps.core.consumers import LiveConsumer

websocket_urlpatterns = [
    path("ws/", LiveConsumer.as_asgi()),
    path("ws/pods/<int:pod_id>/logs/", PodLogConsumer.as_asgi()),
]
