"""Observed state: namespaces, nodes, applications (and their versions), workloads, pods, Warning events.

Read through :func:`apps.core.access.restrict` (hidden rows are 404). Acting — scaling, rollout restarts,
reading logs — needs ``act`` on the object: a viewer who can see it gets 403; each action is audited by
its service, with the reason given.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.clusters import selectors, services
from apps.clusters.api.filters import (
    ApplicationFilter,
    NamespaceFilter,
    NodeFilter,
    PodFilter,
    WarningEventFilter,
    WorkloadFilter,
)
from apps.clusters.api.serializers import (
    ApplicationSerializer,
    ApplicationVersionSerializer,
    NamespaceSerializer,
    NodeSerializer,
    PodDeleteResultSerializer,
    PodDeleteSerializer,
    PodLogQuerySerializer,
    PodLogSerializer,
    PodSerializer,
    RestartResultSerializer,
    RestartSerializer,
    ScaleResultSerializer,
    ScaleSerializer,
    WarningEventSerializer,
    WorkloadSerializer,
)
from apps.core.access import Action
from apps.core.api.filters import FilterBackend, StrictOrderingFilter
from apps.core.api.pagination import CursorPagination
from apps.core.api.viewsets import ReadOnlyViewSet


class ObservedViewSet(ReadOnlyViewSet):
    """Cursor pages need a nearly unique, never-null first ordering key: names, creation time, id."""

    filter_backends = [FilterBackend, StrictOrderingFilter]
    ordering: tuple[str, ...] = ("name", "id")
    ordering_fields: tuple[str, ...] = ("name", "created_at", "id")


class NamespaceViewSet(ObservedViewSet):
    """Namespaces, with the number of workloads and pods you may see in each."""

    serializer_class = NamespaceSerializer
    filterset_class = NamespaceFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.namespace_rows(user)


class NodeViewSet(ObservedViewSet):
    """Nodes (cluster-wide: visible with a cluster or global binding)."""

    serializer_class = NodeSerializer
    filterset_class = NodeFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.node_rows(user)


class VersionPagination(CursorPagination):
    ordering = "-observed_at"

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        return ("-observed_at", "-id")


class ApplicationViewSet(ObservedViewSet):
    """Applications: workloads grouped by ``app.kubernetes.io/part-of`` (else ``name``, else the workload)."""

    serializer_class = ApplicationSerializer
    filterset_class = ApplicationFilter
    action_rights = {"versions": Action.READ}

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.application_rows(user)

    @extend_schema(responses=ApplicationVersionSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        """The application's rollouts, newest first: when each workload's images or revision changed."""
        application = self.get_object()
        paginator = VersionPagination()
        versions = selectors.application_version_rows(request.user, application)
        page = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(ApplicationVersionSerializer(page, many=True).data)


class WorkloadViewSet(ObservedViewSet):
    """Deployments, StatefulSets and DaemonSets. ``scale`` and ``restart`` need ``act`` and a reason."""

    serializer_class = WorkloadSerializer
    filterset_class = WorkloadFilter
    action_rights = {"scale": Action.ACT, "restart": Action.ACT}

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.workload_rows(user)

    @extend_schema(request=ScaleSerializer, responses=ScaleResultSerializer)
    @action(detail=True, methods=["post"])
    def scale(self, request: Request, pk: str | None = None) -> Response:
        """Set the replicas through the scale subresource. With ``resource_version``, a workload changed
        since you read it answers 409 instead of being overwritten."""
        workload = self.get_object()
        data = ScaleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.workload_scale(workload, **data.validated_data, by=request.user)
        return Response(ScaleResultSerializer(result).data)

    @extend_schema(request=RestartSerializer, responses=RestartResultSerializer)
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        """A rollout restart (as ``kubectl rollout restart``): every pod is replaced, respecting the strategy."""
        workload = self.get_object()
        data = RestartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.workload_restart(workload, **data.validated_data, by=request.user)
        return Response(RestartResultSerializer(result).data)


class PodViewSet(ObservedViewSet):
    """Pods. ``logs`` (the last lines of one container) needs ``act``: logs may hold data. Follow live over
    the websocket ``/ws/pods/{id}/logs/?container=&tail_lines=``. ``POST /pods/{id}/delete/`` deletes the pod
    (its controller replaces it): ``act`` on its workload and a reason; during a change freeze ``override``."""

    serializer_class = PodSerializer
    filterset_class = PodFilter
    action_rights = {"logs": Action.ACT, "delete_pod": Action.ACT}

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.pod_rows(user)

    @extend_schema(parameters=[PodLogQuerySerializer], responses=PodLogSerializer, filters=False)
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """The last ``tail_lines`` (1-10000, default 100) lines of ``container`` (default: the first)."""
        pod = self.get_object()
        query = PodLogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        container = query.validated_data["container"]
        lines = services.pod_logs(pod, container=container, tail_lines=query.validated_data["tail_lines"])
        names = [str(c.get("name")) for c in pod.containers]
        return Response({"pod": pod.pk, "container": container or (names[0] if names else ""), "lines": lines})

    @extend_schema(request=PodDeleteSerializer, responses=PodDeleteResultSerializer)
    @action(detail=True, methods=["post"], url_path="delete")
    def delete_pod(self, request: Request, pk: str | None = None) -> Response:
        """Delete the pod, as ``kubectl delete pod`` (UID precondition: a pod recreated under its name is kept)."""
        pod = self.get_object()
        data = PodDeleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.pod_delete(pod=pod, **data.validated_data, by=request.user)
        return Response(PodDeleteResultSerializer(result).data)


class WarningEventViewSet(ObservedViewSet):
    """Recent Kubernetes Warning events (capped per cluster), most recently recorded first."""

    serializer_class = WarningEventSerializer
    filterset_class = WarningEventFilter
    ordering = ("-id",)
    ordering_fields = ("id", "created_at")

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.warning_event_rows(user)
