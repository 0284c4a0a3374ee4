"""URLs of traffic, under /traffic/ (namespace ``traffic``): the OTLP receiver (``/traffic/v1/traces``) and
the agents' request samples (``/traffic/v1/samples``) and the applications' cache configuration
(``/traffic/v1/cache-config``)."""

from __future__ import annotations

from django.urls import path

from apps.traffic.views import cache_config, pages, receiver, recommendations, samples

app_name = "traffic"
urlpatterns = [
    path("", pages.traffic_list, name="traffic"),
    path("table/", pages.traffic_table, name="table"),
    path("graph/", pages.fleet_graph, name="graph"),
    path("applications/<int:pk>/", pages.application_traffic, name="application"),
    path("applications/<int:pk>/live/", pages.application_live, name="application-live"),
    path(
        "applications/<int:pk>/recommendations/compute/",
        recommendations.recommendations_compute,
        name="recommendations-compute",
    ),
    path("recommendations/<int:pk>/accept/", recommendations.recommendation_accept, name="recommendation-accept"),
    path("recommendations/<int:pk>/reject/", recommendations.recommendation_reject, name="recommendation-reject"),
    path("v1/traces", receiver.traces, name="otlp-traces"),
    path("v1/samples", samples.receive, name="samples"),
    path("v1/cache-config", cache_config.cache_config, name="cache-config"),
]
