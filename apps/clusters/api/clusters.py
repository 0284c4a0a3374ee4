"""Clusters API: global admins register clusters; admins of a cluster edit, pause or remove it; operators
ask for a full sync; everyone who can read it sees its health, counts and watch streams (never credentials)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.clusters import selectors, services
from apps.clusters.api.filters import ClusterFilter
from apps.clusters.api.serializers import (
    ClusterCreateSerializer,
    ClusterDeleteSerializer,
    ClusterSerializer,
    ClusterUpdateSerializer,
    QueuedSerializer,
    connection_given,
)
from apps.clusters.models import Cluster
from apps.core.access import Action
from apps.core.api.filters import FilterBackend, StrictOrderingFilter
from apps.core.api.serializers import ReasonSerializer
from apps.core.api.viewsets import ListRetrieveDestroyViewSet
from apps.core.errors import DomainError


class ClusterViewSet(ListRetrieveDestroyViewSet):
    """Registered clusters. Registering needs global ``configure``; editing, pausing and removing need
    ``configure`` on the cluster; asking for a sync needs ``act``. Credentials are write-only."""

    serializer_class = ClusterSerializer
    filterset_class = ClusterFilter
    filter_backends = [FilterBackend, StrictOrderingFilter]
    ordering = ("name",)
    ordering_fields = ("name", "created_at", "id")
    action_rights = {"sync": Action.ACT}  # create, partial_update, destroy, pause, resume: configure
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.cluster_rows(user)

    def _fresh(self, cluster: Cluster) -> dict[str, Any]:
        return dict(ClusterSerializer(self.get_queryset().get(pk=cluster.pk)).data)

    @extend_schema(request=ClusterCreateSerializer, responses={201: ClusterSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Register a cluster: the connection is tested first and every problem names its field."""
        data = ClusterCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cluster = services.cluster_register(**data.validated_data, by=request.user)
        return Response(self._fresh(cluster), status=status.HTTP_201_CREATED)

    @extend_schema(request=ClusterUpdateSerializer, responses=ClusterSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Change the description or interval, or replace the credentials (tested before they are kept)."""
        cluster = self.get_object()
        data = ClusterUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "name" in values and values["name"] != cluster.name:
            raise DomainError("a cluster's name cannot change; register it again under the new name", field="name")
        services.cluster_update(
            cluster,
            description=values.get("description"),
            sync_interval_seconds=values.get("sync_interval_seconds"),
            connection=services.edit_connection(cluster, values) if connection_given(values) else None,
            by=request.user,
        )
        return Response(self._fresh(cluster))

    @extend_schema(
        parameters=[
            OpenApiParameter("confirm", str, description="The cluster's name, repeated (or in the body)."),
            OpenApiParameter("reason", str, description="Why (kept in the audit trail)."),
        ],
        request=ClusterDeleteSerializer,
        responses={204: None},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Remove the cluster and everything observed in it; ``confirm`` must repeat its name."""
        cluster = self.get_object()
        body = request.data
        if not isinstance(body, dict):
            raise DomainError("expected a JSON object", field="body")
        given = {name: request.query_params[name] for name in ("confirm", "reason") if name in request.query_params}
        data = ClusterDeleteSerializer(data={**given, **body})
        data.is_valid(raise_exception=True)
        services.cluster_delete(
            cluster, confirm=data.validated_data["confirm"], reason=data.validated_data["reason"], by=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: QueuedSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str | None = None) -> Response:
        """Ask for a full sync now (it runs on a worker; single-flight per cluster)."""
        cluster = self.get_object()
        services.cluster_sync_request(cluster=cluster, by=request.user)
        return Response({"status": "queued", "cluster": cluster.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReasonSerializer, responses=ClusterSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Stop syncing and watching the cluster (its observed data stays)."""
        return self._set_paused(request, paused=True)

    @extend_schema(request=ReasonSerializer, responses=ClusterSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Sync and watch the cluster again (a full sync starts at once)."""
        return self._set_paused(request, paused=False)

    def _set_paused(self, request: Request, *, paused: bool) -> Response:
        cluster = self.get_object()
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cluster = services.cluster_set_paused(
            cluster, paused=paused, reason=data.validated_data["reason"], by=request.user
        )
        return Response(self._fresh(cluster))
