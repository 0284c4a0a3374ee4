"""Filters of the cron API: ids are whole numbers, booleans true/false and states known, or a 400 naming the
parameter."""

from __future__ import annotations

import django_filters

from apps.core.api.filters import IdFilter, SearchFilter, StrictBooleanFilter
from apps.cron.models import Job, Run, RunState, TargetKind


class JobFilter(django_filters.FilterSet):
    q = SearchFilter(("name", "description", "application__name"), max_length=100)
    application = IdFilter()
    cluster = IdFilter()
    target_kind = django_filters.ChoiceFilter(choices=TargetKind.choices)
    suspended = StrictBooleanFilter()
    declared = StrictBooleanFilter()
    last_state = django_filters.ChoiceFilter(field_name="last_state", choices=RunState.choices)

    class Meta:
        model = Job
        fields = ("q", "application", "cluster", "target_kind", "suspended", "declared", "last_state")


class RunFilter(django_filters.FilterSet):
    job = IdFilter()
    state = django_filters.MultipleChoiceFilter(choices=RunState.choices)
    manual = StrictBooleanFilter()
    late = StrictBooleanFilter()
    since = django_filters.IsoDateTimeFilter(field_name="slot", lookup_expr="gte")

    class Meta:
        model = Run
        fields = ("job", "state", "manual", "late", "since")
