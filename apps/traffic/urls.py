"""URLs of traffic, under /traffic/ (namespace ``traffic``): the OTLP receiver (``/traffic/v1/traces``)."""

from __future__ import annotations

from django.urls import path

from apps.traffic.views import receiver

app_name = "traffic"
urlpatterns = [
    path("v1/traces", receiver.traces, name="otlp-traces"),
]
