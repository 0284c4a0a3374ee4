"""``GET /api/v1/identity/``: who a workload is to ICC when it calls with its ServiceAccount token."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.clusters.api.serializers import MachineIdentitySerializer
from apps.clusters.identity import CLUSTER_HEADER, MachineIdentityAuthentication, machine_identity


class MachineIdentityScheme(OpenApiAuthenticationExtension):
    target_class = "apps.clusters.identity.MachineIdentityAuthentication"
    name = "serviceAccountToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "Kubernetes ServiceAccount JWT, with the X-ICC-Cluster header naming the cluster",
        }


class MachineIdentityView(APIView):
    """The caller's machine identity: cluster, namespace, ServiceAccount and the application it maps to.

    401 without a valid ServiceAccount token and ``X-ICC-Cluster`` header (ICC users have none)."""

    authentication_classes = [MachineIdentityAuthentication]
    permission_classes: list[Any] = []

    @extend_schema(
        parameters=[
            OpenApiParameter(
                CLUSTER_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="The name under which the workload's cluster is registered.",
            )
        ],
        responses=MachineIdentitySerializer,
    )
    def get(self, request: Request) -> Response:
        identity = machine_identity(request)
        if identity is None:
            raise NotAuthenticated(
                f"send the workload's ServiceAccount token (Authorization: Bearer <token>) and {CLUSTER_HEADER}"
            )
        return Response(MachineIdentitySerializer(identity.as_dict()).data)
