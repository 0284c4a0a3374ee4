"""Prometheus metrics that django-prometheus does not provide (tasks, websockets, anonymous API refusals), and the
``/metrics`` endpoints: the web process's view and a standalone worker's or watcher's port, both behind
``METRICS_TOKEN`` (``Authorization: Bearer <token>``) when it is set."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

TASK_RUNS = Counter("icc_task_runs_total", "Celery task executions by outcome", ["task", "outcome"])
TASK_DURATION = Histogram(
    "icc_task_duration_seconds",
    "Celery task duration",
    ["task"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
WS_CONNECTIONS = Gauge("icc_websocket_connections", "Open websocket connections in this process")
WS_SUBSCRIPTIONS = Counter("icc_websocket_subscriptions_total", "Topic subscriptions by outcome", ["outcome"])
WS_MESSAGES = Counter("icc_websocket_messages_sent_total", "HTML fragments pushed to websocket clients")
HEARTBEAT_AGE = Gauge("icc_heartbeat_age_seconds", "Seconds since the last heartbeat task ran", ["role"])
API_ANONYMOUS_DENIED = Counter(
    "icc_api_anonymous_denied",
    "API requests without any credentials, answered 401 (counted here instead of audited one by one)",
    ["route"],
)


class ClusterStateCollector:
    """At each scrape, what the database and Redis say about the whole installation (not just this process):
    ``icc_leader{name,holder}`` (1 for each valid lease's holder, with its ``icc_lease_generation``) and
    ``icc_role_processes{role,version}`` (processes whose heartbeat is fresh). Any failure yields nothing."""

    def describe(self) -> list[Any]:
        return []  # no scrape at registration time

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        leader = GaugeMetricFamily("icc_leader", "Valid leases by holder (database view)", labels=["name", "holder"])
        generation = GaugeMetricFamily("icc_lease_generation", "Fencing generation of each lease", labels=["name"])
        roles = GaugeMetricFamily(
            "icc_role_processes", "Processes with a fresh heartbeat, by role and version", labels=["role", "version"]
        )
        try:
            from apps.core.leases import leases

            for lease in leases():
                generation.add_metric([str(lease["name"])], float(lease["generation"]))  # type: ignore[arg-type]
                if lease["valid"]:
                    leader.add_metric([str(lease["name"]), str(lease["holder"])], 1.0)
        except Exception as exc:  # the database may be down: /readyz says so; the scrape still answers
            logger.debug("leases not scraped: %s", exc)
        try:
            from apps.core.heartbeats import role_counts

            for (role, version), count in sorted(role_counts().items()):
                roles.add_metric([role, version], float(count))
        except Exception as exc:  # Redis may be down
            logger.debug("role heartbeats not scraped: %s", exc)
        return [leader, generation, roles]


def register_cluster_state() -> None:
    """Add :class:`ClusterStateCollector` to the default registry once (web process)."""
    from prometheus_client import REGISTRY

    with _registration:
        if not _registered:
            REGISTRY.register(ClusterStateCollector())
            _registered.append(True)


_registered: list[bool] = []
_registration = threading.Lock()

METRICS_REALM = 'Bearer realm="metrics"'
logger = logging.getLogger(__name__)


def metrics_authorized(authorization: str) -> bool:
    """True when no METRICS_TOKEN is set, or the header is ``Bearer <METRICS_TOKEN>`` (compared in constant time)."""
    token: str = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics`` of the web process (django-prometheus' exporter, multiprocess-aware)."""
    from django_prometheus.exports import ExportToDjangoView

    register_cluster_state()
    if not metrics_authorized(request.headers.get("Authorization", "")):
        response = HttpResponse(
            "metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = METRICS_REALM
        return response
    return ExportToDjangoView(request)


class _QuietHandler(WSGIRequestHandler):
    """Scrapes every few seconds are not worth a log line each."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _guarded(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not metrics_authorized(str(environ.get("HTTP_AUTHORIZATION", ""))):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", METRICS_REALM)])
            return [b"metrics need Authorization: Bearer <METRICS_TOKEN>\n"]
        return app(environ, start_response)

    return guarded


def serve_metrics(port: int, addr: str = "0.0.0.0") -> WSGIServer:  # noqa: S104 - scraped from other pods
    """Serve this process's metrics on ``addr:port`` in a daemon thread (a standalone worker or watcher), like
    prometheus_client's ``start_http_server`` but behind METRICS_TOKEN."""
    server = make_server(addr, port, _guarded(make_wsgi_app()), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="icc-metrics", daemon=True).start()
    return server
