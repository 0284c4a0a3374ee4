"""Filters, search (``q``) and ordering for the clusters API. Every bad value is a 400 naming the parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.db.models import F, Q, QuerySet
from django_filters import rest_framework as filters
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

from apps.clusters.models import (
    Application,
    Cluster,
    ClusterStatus,
    Namespace,
    Node,
    Pod,
    RolloutState,
    WarningEvent,
    Workload,
    WorkloadKind,
)

BOOLEAN_CHOICES = [("true", "true"), ("false", "false"), ("1", "1"), ("0", "0")]


def _boolean(value: str) -> bool:
    return value in ("true", "1")


class StrictBooleanFilter(filters.TypedChoiceFilter):
    """``true``/``false`` (or 1/0); anything else is refused, where django-filter would silently ignore it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("choices", BOOLEAN_CHOICES)
        kwargs.setdefault("coerce", _boolean)
        super().__init__(*args, **kwargs)


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=name`` or ``-name`` among the view's ``ordering_fields``; an unknown field is a 400.

    The id is always appended as the last key so cursor pages are stable when the first key repeats."""

    def get_ordering(self, request: Any, queryset: QuerySet[Any], view: Any) -> Sequence[str]:
        raw = request.query_params.get(self.ordering_param)
        default: tuple[str, ...] = tuple(getattr(view, "ordering", None) or ("id",))
        if raw is None:
            return default
        allowed = tuple(getattr(view, "ordering_fields", ()) or ())
        terms = [term.strip() for term in raw.split(",") if term.strip()]
        if len(terms) != 1 or terms[0].lstrip("-") not in allowed:
            choices = ", ".join(f"{name}, -{name}" for name in allowed)
            raise ValidationError({self.ordering_param: [f"Order by one of: {choices}."]})
        term = terms[0]
        if term.lstrip("-") == "id":
            return (term,)
        return (term, "-id" if term.startswith("-") else "id")

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        allowed = tuple(getattr(view, "ordering_fields", ()) or ())
        for param in params:
            param["schema"] = {"type": "string", "enum": [*allowed, *(f"-{name}" for name in allowed)]}
        return params


class IdFilter(filters.NumberFilter):
    """A row id: a whole number (``1.5`` or ``abc`` is refused naming the parameter)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


def _search(fields: tuple[str, ...]) -> Any:
    def method(self: filters.FilterSet, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        value = value.strip()
        if not value:
            return queryset
        condition = Q()
        for field in fields:
            condition |= Q(**{f"{field}__icontains": value})
        return queryset.filter(condition)

    return method


class ClusterFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ClusterStatus.choices)
    paused = StrictBooleanFilter()
    q = filters.CharFilter(method="search", max_length=200, help_text="Search in name, description and API URL.")
    search = _search(("name", "description", "api_url"))

    class Meta:
        model = Cluster
        fields: list[str] = []


class _Observed(filters.FilterSet):
    cluster = IdFilter(field_name="cluster_id", help_text="A cluster id.")


class NamespaceFilter(_Observed):
    phase = filters.CharFilter(max_length=32)
    q = filters.CharFilter(method="search", max_length=200, help_text="Search in the name.")
    search = _search(("name",))

    class Meta:
        model = Namespace
        fields: list[str] = []


class NodeFilter(_Observed):
    ready = StrictBooleanFilter()
    cordoned = StrictBooleanFilter()
    q = filters.CharFilter(method="search", max_length=200, help_text="Search in the name.")
    search = _search(("name",))

    class Meta:
        model = Node
        fields: list[str] = []


class ApplicationFilter(_Observed):
    namespace = filters.CharFilter(max_length=253)
    active = StrictBooleanFilter()
    q = filters.CharFilter(method="search", max_length=200, help_text="Search in name and namespace.")
    search = _search(("name", "namespace"))

    class Meta:
        model = Application
        fields: list[str] = []


class WorkloadFilter(_Observed):
    namespace = filters.CharFilter(max_length=253)
    application = IdFilter(field_name="application_id", help_text="An application id.")
    kind = filters.ChoiceFilter(choices=WorkloadKind.choices)
    status = filters.ChoiceFilter(field_name="rollout_state", choices=RolloutState.choices, help_text="Rollout state.")
    ready = StrictBooleanFilter(method="filter_ready", help_text="Every desired replica ready (true) or not (false).")
    q = filters.CharFilter(method="search", max_length=200, help_text="Search in name and namespace.")
    search = _search(("name", "namespace"))

    class Meta:
        model = Workload
        fields: list[str] = []

    def filter_ready(self, queryset: QuerySet[Workload], name: str, value: bool | None) -> QuerySet[Workload]:
        if value is None:
            return queryset
        ready = Q(ready_replicas__gte=F("desired_replicas"))
        return queryset.filter(ready) if value else queryset.exclude(ready)


class PodFilter(_Observed):
    namespace = filters.CharFilter(max_length=253)
    application = IdFilter(field_name="application_id", help_text="An application id.")
    workload = IdFilter(field_name="workload_id", help_text="A workload id.")
    phase = filters.ChoiceFilter(
        choices=[(p, p) for p in ("Pending", "Running", "Succeeded", "Failed", "Unknown")],
    )
    ready = StrictBooleanFilter()
    node = filters.CharFilter(field_name="node_name", max_length=253)
    reason = filters.CharFilter(max_length=64, help_text="CrashLoopBackOff, OOMKilled, ...")
    q = filters.CharFilter(method="search", max_length=200, help_text="Search in name, namespace and node.")
    search = _search(("name", "namespace", "node_name"))

    class Meta:
        model = Pod
        fields: list[str] = []


class WarningEventFilter(_Observed):
    namespace = filters.CharFilter(max_length=253)
    application = IdFilter(field_name="application_id", help_text="An application id.")
    kind = filters.CharFilter(field_name="object_kind", max_length=64, help_text="The involved object's kind.")
    reason = filters.CharFilter(max_length=128)
    q = filters.CharFilter(method="search", max_length=200, help_text="Search in object name, reason and message.")
    search = _search(("object_name", "reason", "message"))

    class Meta:
        model = WarningEvent
        fields: list[str] = []
