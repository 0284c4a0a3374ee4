"""Portal pages of traffic: the Traffic page (applications with request rate, error rate, p95 and sparklines), an
application's Traffic tab (its routes, a route's chart, the graph around it with a diff mode between two of its
versions, its caching recommendations) and the fleet graph — each for a chosen range, live.

Views are thin: forms check shapes, selectors read (restricted to the viewer).
"""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.core import portal
from apps.traffic import charts, events, selectors
from apps.traffic.api.filters import METHODS, SORT_CHOICES

RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1), "7d": timedelta(days=7)}
RANGES["30d"] = timedelta(days=30)
ROUTES_PAGE = 50
SPARK_WIDTH, SPARK_HEIGHT = 120, 24


class RangeForm(forms.Form):
    range = forms.ChoiceField(required=False, choices=[(k, k) for k in RANGES])


class ApplicationTrafficForm(RangeForm):
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    method = forms.ChoiceField(required=False, choices=[("", "any method"), *((m, m) for m in METHODS)])
    status_class = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "any status"), *((str(c), f"{c}xx") for c in range(1, 6))],
    )
    route = forms.CharField(required=False, max_length=300)
    diff_from = forms.IntegerField(required=False, min_value=1)
    diff_to = forms.IntegerField(required=False, min_value=1)
    page = forms.IntegerField(required=False, min_value=1)


def _pct(share: float | None) -> float:
    return round(100 * (share or 0.0), 2)


def _range(filters: dict[str, Any]) -> tuple[str, datetime, datetime]:
    name = filters.get("range") or "1h"
    until = timezone.now()
    return name, until - RANGES[name], until


def _list_context(request: HttpRequest) -> dict[str, Any]:
    form = RangeForm(request.GET or None)
    filters = portal.valid_filters(form)
    name, since, until = _range(filters)
    rows = selectors.traffic_by_application(request.user, since, until)
    for row in rows:
        extra: dict[str, Any] = row  # type: ignore[assignment]  # the page's own columns beside the API's
        extra["spark"] = charts.polyline(row["series"], SPARK_WIDTH, SPARK_HEIGHT)
        extra["error_pct"] = _pct(row["error_rate"])
    return {
        "form": form,
        "range": name,
        "ranges": list(RANGES),
        "since": since,
        "until": until,
        "rows": rows,
        "spark": {"width": SPARK_WIDTH, "height": SPARK_HEIGHT},
    }


@login_required
@require_GET
def traffic_list(request: HttpRequest) -> HttpResponse:
    context = _list_context(request)
    context["live_topics"] = events.TRAFFIC
    return render(request, "traffic/traffic.html", context)


traffic_table = portal.table_view("traffic/_applications.html", _list_context)


def _recommendations(user: Any, application: Any) -> tuple[list[Any], str]:
    """The caching recommendations of the application and the template that shows them (none until the
    recommendations module exists)."""
    if importlib.util.find_spec("apps.traffic.recommend_selectors") is None:
        return [], ""
    module = importlib.import_module("apps.traffic.recommend_selectors")
    found = list(module.recommendations_for(user, application))
    try:
        get_template("traffic/_recommendations.html")
    except TemplateDoesNotExist:
        return found, "traffic/_recommendations_slot.html"
    return found, "traffic/_recommendations.html"


def _versions(user: Any, application_id: int) -> list[dict[str, Any]]:
    return [
        {"pk": v.pk, "label": f"{v.observed_at:%Y-%m-%d %H:%M} · {v.workload_name} r{v.revision or '?'}"}
        for v in selectors.versions(user, application_id)
    ]


def _graph(user: Any, application: Any, filters: dict[str, Any], since: datetime, until: datetime) -> dict[str, Any]:
    """The graph around the application, or the diff between two of its versions when both are chosen."""
    diff_from, diff_to = filters.get("diff_from"), filters.get("diff_to")
    if diff_from and diff_to:
        versions = {v.pk: v for v in selectors.versions(user, application.pk, limit=None)}
        older, newer = versions.get(diff_from), versions.get(diff_to)
        if older is not None and newer is not None:
            found = selectors.graph_diff(user, application.pk, older, newer)
            periods = {"before": selectors.version_period(older), "after": selectors.version_period(newer)}
            return _labelled({**found, "diff": True, **periods})
    return _labelled({**selectors.graph(user, since, until, application_id=application.pk), "diff": False})


def _labelled(graph: dict[str, Any]) -> dict[str, Any]:
    """The edges with their ends' labels, for the table under the drawing."""
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    for edge in graph["edges"]:
        edge["source_label"] = labels.get(edge["source"], edge["source"])
        edge["target_label"] = labels.get(edge["target"], edge["target"])
    return graph


def _application_context(request: HttpRequest, application: Any) -> dict[str, Any]:
    form = ApplicationTrafficForm(request.GET or None)
    filters = portal.valid_filters(form)
    name, since, until = _range(filters)
    sort = filters.get("sort") or "-rate"
    page_number = filters.get("page") or 1
    total, routes = selectors.routes(
        request.user,
        application.pk,
        since,
        until,
        sort=sort,
        method=filters.get("method") or "",
        status_class=filters.get("status_class"),
        offset=(page_number - 1) * ROUTES_PAGE,
        limit=ROUTES_PAGE,
    )
    route = filters.get("route") or ""
    level, points = selectors.route_series(
        request.user,
        application.pk,
        since,
        until,
        route=route,
        method=filters.get("method") or "",
        status_class=filters.get("status_class"),
    )
    summary = selectors.traffic_by_application(request.user, since, until, application_id=application.pk)
    recommendations, recommendations_template = _recommendations(request.user, application)
    keep = {k: v for k, v in filters.items() if k not in ("sort", "page")}
    for row in routes:
        extra: dict[str, Any] = row  # type: ignore[assignment]
        extra["error_pct"] = _pct(row["error_rate"])
        extra["chart_query"] = portal.query_string(
            {**keep, "route": row["route"], "method": row["method"], "sort": sort}
        )
    if summary:
        summary[0]["error_pct"] = _pct(summary[0]["error_rate"])  # type: ignore[typeddict-unknown-key]
    return {
        "application": application,
        "form": form,
        "filters": filters,
        "range": name,
        "ranges": list(RANGES),
        "since": since,
        "until": until,
        "summary": summary[0] if summary else None,
        "routes": routes,
        "routes_total": total,
        "sort": sort,
        "sorts": ("rate", "errors", "error_rate", "latency", "p99", "route"),
        "page_number": page_number,
        "has_next": page_number * ROUTES_PAGE < total,
        "keep_query": portal.query_string(keep),
        "page_query": portal.query_string({**keep, "sort": sort}),
        "all_routes_query": portal.query_string(
            {k: v for k, v in keep.items() if k not in ("route", "method")} | {"sort": sort}
        ),
        "route": route,
        "chart": charts.route_chart(points),
        "level": level,
        "graph": _graph(request.user, application, filters, since, until),
        "versions": _versions(request.user, application.pk),
        "recommendations": recommendations,
        "recommendations_template": recommendations_template,
    }


def _readable(request: HttpRequest, pk: int) -> Any:
    application = selectors.application(request.user, pk)
    if application is None:
        raise Http404("No such application")
    return application


@login_required
@require_GET
def application_traffic(request: HttpRequest, pk: int) -> HttpResponse:
    application = _readable(request, pk)
    context = _application_context(request, application)
    context["live_topics"] = events.application(application.pk)
    return render(request, "traffic/application.html", context)


@login_required
@require_GET
def application_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the tab alone (htmx swaps it in when the application's topic changes)."""
    return render(request, "traffic/_application_live.html", _application_context(request, _readable(request, pk)))


@login_required
@require_GET
def fleet_graph(request: HttpRequest) -> HttpResponse:
    form = RangeForm(request.GET or None)
    name, since, until = _range(portal.valid_filters(form))
    graph = _labelled({**selectors.graph(request.user, since, until), "diff": False})
    context = {"form": form, "range": name, "ranges": list(RANGES), "since": since, "until": until, "graph": graph}
    return render(request, "traffic/graph.html", context)
