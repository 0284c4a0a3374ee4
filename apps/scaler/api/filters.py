"""Filters of the scaler API: ids are whole numbers and booleans true/false, or a 400 naming the parameter."""

from __future__ import annotations

import django_filters

from apps.core.api.filters import IdFilter, StrictBooleanFilter
from apps.scaler.models import Decision, Outcome, ScalingPolicy


class DecisionFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    outcome = django_filters.MultipleChoiceFilter(choices=Outcome.choices)
    application = IdFilter()
    policy = IdFilter()

    class Meta:
        model = Decision
        fields = ("application", "policy", "outcome", "trigger")


class PolicyFilter(django_filters.FilterSet):
    application = IdFilter()
    enabled = StrictBooleanFilter()

    class Meta:
        model = ScalingPolicy
        fields = ("application", "mode", "status", "enabled")
