"""Portal pages of compliance: the score and its trend, the overview per cluster and namespace, and the current
results the viewer may read, failing first — live; filtered to one application (its Compliance tab), also that
application's releases and the failures new since its latest one.

Views are thin: the filter form checks shapes, selectors read (restricted to the viewer).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.compliance import events, selectors
from apps.compliance.checks import Severity
from apps.compliance.models import ResultStatus
from apps.core import portal
from apps.core.access import GLOBAL, Action, can_at
from apps.core.errors import DomainError

RESULTS_PAGE = 50
NAMESPACES_SHOWN = 20
NEW_SHOWN = 50
SCOPE_FILTERS = ("severity", "policy", "check", "cluster", "namespace", "application", "q")


class ResultFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "workload or check id"}),
    )
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *ResultStatus.choices])
    severity = forms.ChoiceField(required=False, choices=[("", "any severity"), *((s, s) for s in Severity)])
    policy = forms.SlugField(required=False, max_length=100)
    check = forms.CharField(
        required=False, max_length=200, widget=forms.TextInput(attrs={"placeholder": "pss.baseline.privileged"})
    )
    cluster = forms.IntegerField(required=False, min_value=1)
    namespace = forms.CharField(required=False, max_length=253)
    application = forms.IntegerField(required=False, min_value=1)
    page = forms.IntegerField(required=False, min_value=1)


def selection(filters: dict[str, Any]) -> dict[str, Any]:
    """The selector's keywords for the scope filters (everything but the status and the page)."""
    values = {k: filters[k] for k in SCOPE_FILTERS if k in filters}
    if "q" in values:
        values["search"] = values.pop("q")
    return values


def _history_scope(filters: dict[str, Any]) -> dict[str, Any]:
    """The filters the history keeps (it counts per scope, policy and severity, not per check or workload)."""
    return {k: filters[k] for k in ("cluster", "namespace", "application", "policy", "severity") if k in filters}


def _application_context(request: HttpRequest, application_id: int, scope: Any) -> dict[str, Any]:
    application = selectors.applications(request.user).filter(pk=application_id).first()
    if application is None:
        return {"filtered_application": None}
    release = selectors.current_release(request.user, application)
    new = selectors.new_since_release(scope, release) if release is not None else scope.none()
    return {
        "filtered_application": application,
        "releases": selectors.releases(request.user, application),
        "current_release": release,
        "new_since_release": list(new[:NEW_SHOWN]),
        "new_since_release_count": new.count() if release is not None else 0,
    }


def _results_context(request: HttpRequest) -> dict[str, Any]:
    form = ResultFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    scope = selectors.results(request.user, **selection(filters))
    rows = scope.filter(status=filters["status"]) if filters.get("status") else scope
    overview = selectors.overview(scope)
    points = selectors.trend(selectors.history(request.user, since=selectors.trend_window(), **_history_scope(filters)))
    query = portal.query_string(filters)
    context = {
        "form": form,
        "filters": filters,
        "summary": selectors.summary(scope),
        "overview": overview,
        "namespaces": overview["namespaces"][:NAMESPACES_SHOWN],
        "trend": points,
        "spark": selectors.sparkline(points),
        "page": portal.paginate(rows, filters.get("page"), RESULTS_PAGE),
        "query": query,
        "failing_query": portal.query_string({**filters, "status": ResultStatus.FAIL, "page": None}),
        "report_query": portal.query_string({k: v for k, v in filters.items() if k != "page"}),
    }
    if filters.get("application"):
        context.update(_application_context(request, filters["application"], scope))
    return context


@login_required
@require_GET
def result_list(request: HttpRequest) -> HttpResponse:
    context = _results_context(request)
    application = context.get("filtered_application")
    context.update(
        applications=selectors.applications(request.user),
        clusters=selectors.clusters(request.user),
        policies=selectors.policy_keys(request.user),
        live_topics=events.application(application.pk) if application is not None else events.RESULTS,
        may_scan=can_at(request.user, Action.ACT, GLOBAL),
    )
    return render(request, "compliance/results.html", context)


@login_required
@require_POST
def scan_now(request: HttpRequest) -> HttpResponse:
    """Scan every observed workload now; the page updates live as results change."""
    from apps.compliance.services.scans import scan_request

    try:
        scan_request(by=request.user)
    except DomainError as exc:
        if exc.status == 403:
            portal.deny(request, "compliance.scan.request", None)
        messages.warning(request, exc.message)
    else:
        messages.success(request, "Scan queued: every observed workload is evaluated again; this page follows live.")
    return redirect("compliance:results")


result_table = portal.table_view("compliance/_live.html", _results_context)
