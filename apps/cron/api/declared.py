"""``PUT /api/v1/cron/declared/``: a workload declares its application's jobs with its ServiceAccount token.

``Authorization: Bearer <ServiceAccount JWT>`` plus ``X-ICC-Cluster: <cluster name>`` (see
:mod:`apps.clusters.identity`); the body is ``{"jobs": [{"name", "schedule", "http_url", ...}, ...]}``. ICC tokens
and sessions are refused here: declared jobs come from the application itself.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.clusters.identity import MachineIdentityAuthentication, machine_identity
from apps.core.errors import DomainError
from apps.cron.services.declared import jobs_declare

_names = serializers.ListField(child=serializers.CharField())


class DeclaredJobsView(APIView):
    authentication_classes = [MachineIdentityAuthentication]
    permission_classes: list[Any] = []

    @extend_schema(
        request=inline_serializer("DeclaredJobs", {"jobs": serializers.ListField(child=serializers.DictField())}),
        responses=inline_serializer(
            "DeclaredJobsResult", {"created": _names, "updated": _names, "removed": _names, "unchanged": _names}
        ),
    )
    def put(self, request: Request) -> Response:
        identity = machine_identity(request)
        if identity is None:
            raise NotAuthenticated("send the workload's ServiceAccount token with X-ICC-Cluster")
        body = request.data
        if not isinstance(body, dict) or set(body) - {"jobs"}:
            raise DomainError('expected {"jobs": [...]}', field="jobs")
        return Response(jobs_declare(identity=identity, jobs=body.get("jobs")))
