"""Compliance API reads: the current results the caller may read, their summary and overview, the history
(counts per scan), and reports (OpenReports JSON or YAML, CSV) — all restricted to the caller's scopes."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.compliance import reports, selectors
from apps.compliance.api.filters import HISTORY_FIELDS, SCOPE_FIELDS, HistoryFilter, ResultFilter, ResultScopeFilter
from apps.compliance.api.serializers import (
    ComplianceHistoryPageSerializer,
    ComplianceHistoryPointSerializer,
    ComplianceOverviewSerializer,
    ResultSerializer,
    SummarySerializer,
)
from apps.compliance.models import HistoryPoint, Result
from apps.core.access import Action, restrict
from apps.core.api.pagination import CursorPagination
from apps.core.api.renderers import ORJSONRenderer
from apps.core.api.viewsets import RestrictedViewSetMixin

REPORT_FORMATS = ("json", "yaml", "csv")
HISTORY_SCOPE = ("cluster", "namespace", "application", "policy", "severity")


class ResultViewSet(RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One current result per workload and check. Filters: q (workload name or check id), status, severity,
    policy, check, cluster, namespace, application."""

    serializer_class = ResultSerializer
    filterset_class = ResultFilter

    def get_restricted_queryset(self, user: Any) -> Any:
        return restrict(user, Action.READ, Result.objects.select_related("workload")).order_by("-id")


def _scope(request: Request, filterset: type[ResultScopeFilter] = ResultScopeFilter) -> Any:
    """The results the caller may read, narrowed by the request's filters (a bad value is a 400 naming it)."""
    rows = restrict(request.user, Action.READ, Result.objects.all())
    found = filterset(request.query_params, queryset=rows, request=request)
    if not found.is_valid():
        raise ValidationError(found.errors)
    return found


SCOPE_PARAMETERS = [OpenApiParameter(name, str) for name in SCOPE_FIELDS]


class SummaryView(APIView):
    """Counts by status, failing counts by severity and the score (passes among passes and fails, in percent) of
    the results the caller may read, with the score's trend over the last scans; with an ``application``, also
    its latest release and how many failures began since. The same filters as the results, but the status."""

    @extend_schema(parameters=SCOPE_PARAMETERS, responses=SummarySerializer)
    def get(self, request: Request) -> Response:
        found = _scope(request)
        data = dict(selectors.summary(found.qs))
        scope = {k: v for k, v in found.form.cleaned_data.items() if k in HISTORY_SCOPE and v not in (None, "")}
        data["trend"] = selectors.trend(selectors.history(request.user, since=selectors.trend_window(), **scope))
        data["release"] = None
        application = found.form.cleaned_data.get("application")
        if application:
            app = selectors.applications(request.user).filter(pk=application).first()
            version = selectors.current_release(request.user, app) if app is not None else None
            if version is not None:
                data["release"] = {
                    "version": version.pk,
                    "observed_at": version.observed_at,
                    "new_failures": selectors.new_since_release(found.qs, version).count(),
                }
        return Response(SummarySerializer(data).data)


class OverviewView(APIView):
    """Counts and score per cluster and per namespace of the results the caller may read, lowest score first; the
    same filters as the summary."""

    @extend_schema(parameters=SCOPE_PARAMETERS, responses=ComplianceOverviewSerializer)
    def get(self, request: Request) -> Response:
        return Response(ComplianceOverviewSerializer(selectors.overview(_scope(request).qs)).data)


class HistoryPagination(CursorPagination):
    ordering = "-taken_at"


class HistoryView(APIView):
    """The counts after each scan (newest first, cursor pages), summed over what the caller may read. Filters:
    cluster, namespace, application, policy, severity, since (ISO 8601). Each item sums a scan's rows, so it has no
    id of its own."""

    @extend_schema(
        parameters=[
            *(OpenApiParameter(name, OpenApiTypes.DATETIME if name == "since" else str) for name in HISTORY_FIELDS),
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
        ],
        responses=ComplianceHistoryPageSerializer,
    )
    def get(self, request: Request) -> Response:
        rows = restrict(request.user, Action.READ, HistoryPoint.objects.all())
        found = HistoryFilter(request.query_params, queryset=rows, request=request)
        if not found.is_valid():
            raise ValidationError(found.errors)
        # filter the rows first, then sum them per scan
        wanted = found.form.cleaned_data
        rows = selectors.history_rows(
            found.qs, policy=wanted.get("policy") or "", severity=wanted.get("severity") or ""
        )
        points = selectors.per_scan(rows)
        paginator = HistoryPagination()
        page: list[Any] = paginator.paginate_queryset(points, request, view=self) or []
        return paginator.get_paginated_response(ComplianceHistoryPointSerializer(page, many=True).data)


class YAMLRenderer(BaseRenderer):
    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return reports.as_yaml(data).encode() if data is not None else b""


class CSVRenderer(BaseRenderer):
    """CSV reports stream past the renderer; this renders the errors (a 400) as ``field,message`` lines."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if not isinstance(data, dict):
            return b""
        lines = ["field,message"]
        for field, messages in data.items():
            for message in messages if isinstance(messages, list) else [messages]:
                lines.append(f'{field},"{str(message).replace(chr(34), chr(39))}"')
        return ("\n".join(lines) + "\n").encode()


class ReportView(APIView):
    """The results the caller may read as a report: ``format=json`` (default) or ``yaml`` — an OpenReports
    ``ReportList`` (``openreports.io/v1alpha1``), one ``Report`` per cluster and namespace — or ``csv``. The same
    filters as the results (status included)."""

    renderer_classes = (ORJSONRenderer, YAMLRenderer, CSVRenderer)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        wanted = request.query_params.get("format")
        if wanted is not None and wanted not in REPORT_FORMATS and not force:
            raise ValidationError({"format": [f"Choose one of: {', '.join(REPORT_FORMATS)}."]})
        return super().perform_content_negotiation(request, force)

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=REPORT_FORMATS),
            *SCOPE_PARAMETERS,
            OpenApiParameter("status", str),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Any:
        rows = _scope(request, ResultFilter).qs
        filename = f"icc-compliance.{request.accepted_renderer.format}"
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(reports.as_csv(rows), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        if rows.count() > reports.MAX_RESULTS:
            raise ValidationError(
                {"format": [f"More than {reports.MAX_RESULTS} results: narrow the report by scope or use csv."]}
            )
        return Response(reports.openreports(rows), headers={"Content-Disposition": f'inline; filename="{filename}"'})


class ScanView(APIView):
    """``POST``: scan every observed workload now (act right globally; once a minute at most)."""

    @extend_schema(request=None, responses={202: None})
    def post(self, request: Request) -> Response:
        from apps.compliance.services.scans import scan_request

        scan_request(by=request.user)
        return Response(status=202)
