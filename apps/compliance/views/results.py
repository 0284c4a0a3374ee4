"""Portal pages of compliance: the summary and the current results the viewer may read, failing first.

Read-only for now; views are thin: the filter form checks shapes, selectors read (restricted to the viewer).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.compliance import selectors
from apps.compliance.checks import Severity
from apps.compliance.models import ResultStatus
from apps.core import portal

RESULTS_PAGE = 50
SCOPE_FILTERS = ("severity", "policy", "cluster", "namespace", "application", "q")


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
    cluster = forms.IntegerField(required=False, min_value=1)
    namespace = forms.CharField(required=False, max_length=253)
    application = forms.IntegerField(required=False, min_value=1)
    page = forms.IntegerField(required=False, min_value=1)


def _selection(filters: dict[str, Any]) -> dict[str, Any]:
    """The selector's keywords for the scope filters (everything but the status and the page)."""
    values = {k: filters[k] for k in SCOPE_FILTERS if k in filters}
    if "q" in values:
        values["search"] = values.pop("q")
    return values


def _results_context(request: HttpRequest) -> dict[str, Any]:
    form = ResultFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    scope = selectors.results(request.user, **_selection(filters))
    rows = scope.filter(status=filters["status"]) if filters.get("status") else scope
    return {
        "form": form,
        "filters": filters,
        "summary": selectors.summary(scope),
        "page": portal.paginate(rows, filters.get("page"), RESULTS_PAGE),
        "query": portal.query_string(filters),
    }


@login_required
@require_GET
def result_list(request: HttpRequest) -> HttpResponse:
    context = _results_context(request)
    application = context["filters"].get("application")
    applications = selectors.applications(request.user)
    context.update(
        applications=applications,
        clusters=selectors.clusters(request.user),
        policies=selectors.policy_keys(request.user),
        filtered_application=applications.filter(pk=application).first() if application else None,
    )
    return render(request, "compliance/results.html", context)


result_table = portal.table_view("compliance/_results_table.html", _results_context)
