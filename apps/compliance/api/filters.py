"""Filters of the compliance API: ids are whole numbers, statuses and severities known, or a 400 naming the
parameter."""

from __future__ import annotations

import django_filters

from apps.compliance.checks import Severity
from apps.compliance.models import Result, ResultStatus
from apps.compliance.selectors import SEARCH_FIELDS
from apps.core.api.filters import IdFilter, SearchFilter

SCOPE_FIELDS = ("q", "severity", "policy", "cluster", "namespace", "application")


class ResultScopeFilter(django_filters.FilterSet):
    """What a summary is taken over: every result filter but the status."""

    q = SearchFilter(SEARCH_FIELDS, max_length=100)
    severity = django_filters.ChoiceFilter(choices=[(str(s), str(s)) for s in Severity])
    policy = django_filters.CharFilter(max_length=100)
    cluster = IdFilter()
    namespace = django_filters.CharFilter(max_length=253)
    application = IdFilter()

    class Meta:
        model = Result
        fields = SCOPE_FIELDS


class ResultFilter(ResultScopeFilter):
    status = django_filters.ChoiceFilter(choices=ResultStatus.choices)

    class Meta:
        model = Result
        fields = (*SCOPE_FIELDS, "status")
