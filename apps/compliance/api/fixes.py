"""A failing result's fix in the API: ``GET /api/v1/compliance/results/{id}/fix/`` shows the JSON Patch and the
equivalent ``kubectl patch`` command; ``POST`` with a reason applies it to the workload (operators of the workload;
audited). A result the caller may not read is 404; one they may read but not act on is 403."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.compliance.models import Result
from apps.compliance.services import fixes
from apps.core.access import Action, restrict
from apps.core.api.serializers import StrictSerializer
from apps.core.errors import NotFoundError


class ResultFixSerializer(serializers.Serializer):
    result = serializers.IntegerField()
    check_id = serializers.CharField()
    status = serializers.CharField()
    fix = serializers.JSONField(allow_null=True, help_text="a JSON Patch (RFC 6902) against the workload")
    kubectl = serializers.CharField(help_text="the same patch as a kubectl command (empty without a fix)")

    @staticmethod
    def of(result: Result) -> dict[str, Any]:
        patch = fixes.fix_patch(result)
        return {
            "result": result.pk,
            "check_id": result.check_id,
            "status": result.status,
            "fix": patch or None,
            "kubectl": fixes.kubectl_patch(result),
        }


class FixApplySerializer(StrictSerializer):
    # Required by the service, after the caller's rights: a viewer learns "403", not which field is missing.
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=500, default="", help_text="why (required; audited)"
    )
    override = serializers.BooleanField(
        required=False, default=False, help_text="Act during a change freeze (needs override-freeze)."
    )


class FixAppliedSerializer(serializers.Serializer):
    result = serializers.IntegerField()
    resource_version = serializers.CharField(help_text="the workload's resourceVersion after the patch")
    generation = serializers.IntegerField(allow_null=True)


def _result(request: Request, pk: int) -> Result:
    found = restrict(request.user, Action.READ, Result.objects.select_related("workload")).filter(pk=pk).first()
    if found is None:
        raise NotFoundError(f"no result {pk}")
    return found


class ResultFixView(APIView):
    """The fix of one result: ``GET`` shows it, ``POST {"reason"}`` applies it (then the watcher sees the change
    and the workload is re-evaluated)."""

    serializer_class = ResultFixSerializer

    @extend_schema(responses=ResultFixSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ResultFixSerializer.of(_result(request, pk)))

    @extend_schema(request=FixApplySerializer, responses=FixAppliedSerializer)
    def post(self, request: Request, pk: int) -> Response:
        result = _result(request, pk)
        body = FixApplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        applied = fixes.result_fix_apply(
            result=result,
            reason=body.validated_data["reason"],
            override=body.validated_data["override"],
            by=request.user,
        )
        return Response({"result": result.pk, **applied})
