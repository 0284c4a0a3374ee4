"""Filters of the calendar API: known kinds, booleans true/false, or a 400 naming the parameter."""

from __future__ import annotations

import django_filters

from apps.calendar.models import CalendarEntry, EntryKind
from apps.core.access import ScopeKind
from apps.core.api.filters import SearchFilter, StrictBooleanFilter


class CalendarEntryFilter(django_filters.FilterSet):
    q = SearchFilter(("title", "reason", "owner"), max_length=100)
    kind = django_filters.ChoiceFilter(choices=EntryKind.choices)
    enabled = StrictBooleanFilter()
    scope_kind = django_filters.ChoiceFilter(choices=ScopeKind.choices)
    scope_cluster = django_filters.CharFilter(max_length=32)

    class Meta:
        model = CalendarEntry
        fields = ("q", "kind", "enabled", "scope_kind", "scope_cluster")
