from __future__ import annotations

import django_filters

from apps.scaler.models import Decision, Outcome, ScalingPolicy


class DecisionFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    outcome = django_filters.MultipleChoiceFilter(choices=Outcome.choices)

    class Meta:
        model = Decision
        fields = ("application", "policy", "outcome", "trigger")


class PolicyFilter(django_filters.FilterSet):
    class Meta:
        model = ScalingPolicy
        fields = ("application", "mode", "status", "enabled")
