"""Filters of the notifications API: known values or a 400 naming the parameter."""

from __future__ import annotations

import django_filters

from apps.core.api.filters import IdFilter, SearchFilter, StrictBooleanFilter
from apps.notifications.models import SEVERITY_CHOICES, Delivery, DeliveryStatus, Event


class EventFilter(django_filters.FilterSet):
    q = SearchFilter(("subject", "text", "kind", "dedup_key"), max_length=100)
    kind = django_filters.CharFilter(max_length=100)
    severity = django_filters.MultipleChoiceFilter(choices=SEVERITY_CHOICES)
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    maintenance = StrictBooleanFilter()

    class Meta:
        model = Event
        fields = ("q", "kind", "severity", "since", "maintenance")


class DeliveryFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=DeliveryStatus.choices)
    channel = IdFilter()
    message = IdFilter()

    class Meta:
        model = Delivery
        fields = ("status", "channel", "message")
