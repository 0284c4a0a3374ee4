"""URLs of traffic, under /traffic/ (namespace ``traffic``): the OTLP receiver (``/traffic/v1/traces``) and
the agents' request samples (``/traffic/v1/samples``)."""

from __future__ import annotations

from django.urls import path

from apps.traffic.views import receiver, samples

app_name = "traffic"
urlpatterns = [
    path("v1/traces", receiver.traces, name="otlp-traces"),
    path("v1/samples", samples.receive, name="samples"),
]
