"""Filters, search (``q``) and ordering for the clusters API. Every bad value is a 400 naming the parameter."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet
from django_filters import rest_framework as filters

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
from apps.core.api.filters import IdFilter, SearchFilter, StrictBooleanFilter


class ClusterFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ClusterStatus.choices)
    paused = StrictBooleanFilter()
    q = SearchFilter(("name", "description", "api_url"), help_text="Search in name, description and API URL.")

    class Meta:
        model = Cluster
        fields: list[str] = []


class _Observed(filters.FilterSet):
    cluster = IdFilter(field_name="cluster_id", help_text="A cluster id.")


class _Namespaced(_Observed):
    """Objects that live in a namespace."""

    namespace = filters.CharFilter(max_length=253)


class _OfApplication(_Namespaced):
    """Objects that may belong to an application."""

    application = IdFilter(field_name="application_id", help_text="An application id.")


class NamespaceFilter(_Observed):
    phase = filters.CharFilter(max_length=32)
    q = SearchFilter(("name",), help_text="Search in the name.")

    class Meta:
        model = Namespace
        fields: list[str] = []


class NodeFilter(_Observed):
    ready = StrictBooleanFilter()
    cordoned = StrictBooleanFilter()
    q = SearchFilter(("name",), help_text="Search in the name.")

    class Meta:
        model = Node
        fields: list[str] = []


class ApplicationFilter(_Namespaced):
    active = StrictBooleanFilter()
    q = SearchFilter(("name", "namespace"), help_text="Search in name and namespace.")

    class Meta:
        model = Application
        fields: list[str] = []


class WorkloadFilter(_OfApplication):
    kind = filters.ChoiceFilter(choices=WorkloadKind.choices)
    status = filters.ChoiceFilter(field_name="rollout_state", choices=RolloutState.choices, help_text="Rollout state.")
    ready = StrictBooleanFilter(method="filter_ready", help_text="Every desired replica ready (true) or not (false).")
    q = SearchFilter(("name", "namespace"), help_text="Search in name and namespace.")

    class Meta:
        model = Workload
        fields: list[str] = []

    def filter_ready(self, queryset: QuerySet[Workload], name: str, value: bool | None) -> QuerySet[Workload]:
        if value is None:
            return queryset
        ready = Q(ready_replicas__gte=F("desired_replicas"))
        return queryset.filter(ready) if value else queryset.exclude(ready)


class PodFilter(_OfApplication):
    workload = IdFilter(field_name="workload_id", help_text="A workload id.")
    phase = filters.ChoiceFilter(
        choices=[(p, p) for p in ("Pending", "Running", "Succeeded", "Failed", "Unknown")],
    )
    ready = StrictBooleanFilter()
    node = filters.CharFilter(field_name="node_name", max_length=253)
    reason = filters.CharFilter(max_length=64, help_text="CrashLoopBackOff, OOMKilled, ...")
    q = SearchFilter(("name", "namespace", "node_name"), help_text="Search in name, namespace and node.")

    class Meta:
        model = Pod
        fields: list[str] = []


class WarningEventFilter(_OfApplication):
    kind = filters.CharFilter(field_name="object_kind", max_length=64, help_text="The involved object's kind.")
    reason = filters.CharFilter(max_length=128)
    q = SearchFilter(("object_name", "reason", "message"), help_text="Search in object name, reason and message.")

    class Meta:
        model = WarningEvent
        fields: list[str] = []
