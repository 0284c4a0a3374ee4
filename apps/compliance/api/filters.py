"""Filters of the compliance API: ids are whole numbers, statuses and severities known, or a 400 naming the
parameter."""

from __future__ import annotations

import django_filters

from apps.compliance.checks import Severity
from apps.compliance.models import HistoryPoint, Result, ResultStatus
from apps.compliance.selectors import SEARCH_FIELDS
from apps.core.api.filters import IdFilter, SearchFilter

SCOPE_FIELDS = ("q", "severity", "policy", "check", "cluster", "namespace", "application")
HISTORY_FIELDS = ("cluster", "namespace", "application", "policy", "severity", "since")
SEVERITIES = [(str(s), str(s)) for s in Severity]


class ResultScopeFilter(django_filters.FilterSet):
    """What a summary is taken over: every result filter but the status."""

    q = SearchFilter(SEARCH_FIELDS, max_length=100)
    severity = django_filters.ChoiceFilter(choices=SEVERITIES)
    policy = django_filters.CharFilter(max_length=100)
    check = django_filters.CharFilter(field_name="check_id", max_length=200)
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


class HistoryFilter(django_filters.FilterSet):
    """The scope a history is summed over, and from when."""

    cluster = IdFilter(field_name="cluster_id")
    namespace = django_filters.CharFilter(max_length=253)
    application = IdFilter(field_name="application_id")
    policy = django_filters.CharFilter(max_length=100)
    severity = django_filters.ChoiceFilter(choices=SEVERITIES)
    since = django_filters.IsoDateTimeFilter(field_name="taken_at", lookup_expr="gte")

    class Meta:
        model = HistoryPoint
        fields = HISTORY_FIELDS
