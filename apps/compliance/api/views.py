"""Compliance API (read-only slice): the current results the caller may read, and their summary."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.compliance import selectors
from apps.compliance.api.filters import SCOPE_FIELDS, ResultFilter, ResultScopeFilter
from apps.compliance.api.serializers import ResultSerializer, SummarySerializer
from apps.compliance.models import Result
from apps.core.access import Action, restrict
from apps.core.api.viewsets import RestrictedViewSetMixin


class ResultViewSet(RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One current result per workload and check. Filters: q (workload name or check id), status, severity,
    policy, cluster, namespace, application."""

    serializer_class = ResultSerializer
    filterset_class = ResultFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return restrict(user, Action.READ, Result.objects.select_related("workload")).order_by("-id")


class SummaryView(APIView):
    """Counts by status, failing counts by severity and the score (passes among passes and fails, in percent) of
    the results the caller may read; the same filters as the results, but the status."""

    @extend_schema(parameters=[OpenApiParameter(name, str) for name in SCOPE_FIELDS], responses=SummarySerializer)
    def get(self, request: Request) -> Response:
        rows = restrict(request.user, Action.READ, Result.objects.all())
        found = ResultScopeFilter(request.query_params, queryset=rows, request=request)
        if not found.is_valid():
            raise ValidationError(found.errors)
        return Response(SummarySerializer(selectors.summary(found.qs)).data)
