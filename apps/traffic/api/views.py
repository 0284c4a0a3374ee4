"""Traffic API reads, restricted to what the caller may read: the applications' traffic, one application's routes
(sorted, paged) and their series, and the service graph (fleet, around an application, or diff mode between two
of its versions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.pagination import LimitOffsetPagination
from apps.traffic import selectors
from apps.traffic.api import filters
from apps.traffic.api.serializers import (
    TrafficApplicationPageSerializer,
    TrafficApplicationSerializer,
    TrafficGraphSerializer,
    TrafficRoutePageSerializer,
    TrafficRouteSerializer,
    TrafficSeriesSerializer,
)

RANGE = [OpenApiParameter("since", OpenApiTypes.DATETIME), OpenApiParameter("until", OpenApiTypes.DATETIME)]
PAGE = [OpenApiParameter("limit", int), OpenApiParameter("offset", int)]
ROUTE_FILTERS = [
    OpenApiParameter("application", int),
    OpenApiParameter("method", str, enum=filters.METHODS),
    OpenApiParameter("status_class", int, description="1 to 5 (2 for 2xx), 0 when unknown"),
]


def _page(request: Request, view: APIView, total: int, results: Any, paginator: LimitOffsetPagination) -> Any:
    paginator.request, paginator.count = request, total
    return paginator.get_paginated_response(results)


class ApplicationsView(APIView):
    """Per application the caller reads that had requests in the range (default: the last hour): requests, rate
    per second, errors and error rate, p50/p95/p99 in milliseconds (from merged sketches), bytes, and the request
    rate per minute, hour or day (minutes up to 6 h, hours up to 14 days). Busiest first."""

    @extend_schema(parameters=[*RANGE, *PAGE], responses=TrafficApplicationPageSerializer)
    def get(self, request: Request) -> Response:
        wanted = filters.parse(filters.RangeForm, request.query_params)
        paginator = LimitOffsetPagination()
        limit, offset = paginator.get_limit(request) or 50, paginator.get_offset(request)
        paginator.limit, paginator.offset = limit, offset
        found = selectors.traffic_by_application(request.user, wanted["since"], wanted["until"])
        data = TrafficApplicationSerializer(found[offset : offset + limit], many=True).data
        return _page(request, self, len(found), data, paginator)


class RoutesView(APIView):
    """Routes (application, route template, method) over the range, with the same figures as the applications;
    ``sort`` by rate, errors, error_rate, latency (the p95), p99 or route (``-`` descending; default ``-rate``).
    Filters: application, method, status_class."""

    @extend_schema(
        parameters=[
            *ROUTE_FILTERS,
            *RANGE,
            OpenApiParameter("sort", str, enum=[c for c, _ in filters.SORT_CHOICES]),
            *PAGE,
        ],
        responses=TrafficRoutePageSerializer,
    )
    def get(self, request: Request) -> Response:
        wanted = filters.parse(filters.RoutesForm, request.query_params)
        paginator = LimitOffsetPagination()
        limit, offset = paginator.get_limit(request) or 50, paginator.get_offset(request)
        paginator.limit, paginator.offset = limit, offset
        total, page = selectors.routes(
            request.user,
            wanted.get("application"),
            wanted["since"],
            wanted["until"],
            sort=wanted.get("sort") or "-rate",
            method=wanted.get("method") or "",
            status_class=wanted.get("status_class"),
            offset=offset,
            limit=limit,
        )
        return _page(request, self, total, TrafficRouteSerializer(page, many=True).data, paginator)


class RouteSeriesView(APIView):
    """One application's (or one of its routes') requests, errors, rate and p50/p95/p99 per minute, hour or day
    over the range. ``application`` is required; ``route`` the template."""

    @extend_schema(
        parameters=[*ROUTE_FILTERS, OpenApiParameter("route", str), *RANGE], responses=TrafficSeriesSerializer
    )
    def get(self, request: Request) -> Response:
        wanted = filters.parse(filters.SeriesForm, request.query_params, frozenset({"format"}))
        level, points = selectors.route_series(
            request.user,
            wanted["application"],
            wanted["since"],
            wanted["until"],
            route=wanted.get("route") or "",
            method=wanted.get("method") or "",
            status_class=wanted.get("status_class"),
        )
        return Response(TrafficSeriesSerializer({"level": level, "points": points}).data)


class GraphView(APIView):
    """The service graph over the range: nodes (applications, ``db:`` and ``peer:`` virtual nodes, ``unknown``)
    and edges (calls, errors, unpaired calls, the caller's and the callee's p50/p95). With ``application``, one
    hop each way around it; with ``diff_from`` and ``diff_to`` (two of its versions), the graph while ``diff_to``
    was active with each edge's ``change``: new, removed, slower (p95 up by more than 20 %) or ""."""

    @extend_schema(
        parameters=[
            OpenApiParameter("application", int),
            *RANGE,
            OpenApiParameter("diff_from", int, description="a version id of the application"),
            OpenApiParameter("diff_to", int, description="another version id of the application"),
        ],
        responses=TrafficGraphSerializer,
    )
    def get(self, request: Request) -> Response:
        wanted = filters.parse(filters.GraphForm, request.query_params, frozenset({"format"}))
        application: int | None = wanted.get("application")
        if application is None or not wanted.get("diff_from"):
            found = selectors.graph(request.user, wanted["since"], wanted["until"], application_id=application)
            return Response(TrafficGraphSerializer({"since": wanted["since"], "until": wanted["until"], **found}).data)
        versions = {v.pk: v for v in selectors.versions(request.user, application, limit=None)}
        older, newer = versions.get(wanted["diff_from"]), versions.get(wanted["diff_to"])
        if older is None or newer is None:
            name = "diff_from" if older is None else "diff_to"
            raise ValidationError({name: ["Not a version of this application that you may read."]})
        before, after = selectors.version_period(older), selectors.version_period(newer)
        found = selectors.graph_diff(request.user, application, older, newer)
        data = {"since": after[0], "until": after[1], "before_since": before[0], "before_until": before[1], **found}
        return Response(TrafficGraphSerializer(data).data)
