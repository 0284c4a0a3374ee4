"""Cron API: jobs (create, change and delete need ``configure`` where the job lives; running, suspending and
cancelling need ``act``), runs with their attempts, and a preview of a schedule's next runs. Every write parses
its input and calls the service, which checks the caller, validates (naming the field), audits and publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.clusters.models import Application, Cluster
from apps.core.access import Action, restrict
from apps.core.api.permissions import OWN
from apps.core.api.serializers import ReasonSerializer
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.core.errors import DomainError
from apps.cron import schedule, selectors
from apps.cron.api.filters import JobFilter, RunFilter
from apps.cron.api.serializers import (
    DeleteSerializer,
    JobCreatedSerializer,
    JobSerializer,
    JobWriteSerializer,
    PreviewSerializer,
    RunDetailSerializer,
    RunSerializer,
    SecretSerializer,
)
from apps.cron.models import Job, Run
from apps.cron.services import jobs as job_services
from apps.cron.services import runs as run_services

PREVIEW_COUNT = 10


def _by_id(user: Any, model: Any, pk: Any, field: str) -> Any:
    """The row ``pk`` of ``model`` the user may read, or a DomainError naming ``field``."""
    if pk is None:
        return None
    found = restrict(user, Action.READ, model.objects.all()).filter(pk=pk).first()
    if found is None:
        raise DomainError(f"no {field} {pk} (or you cannot see it)", field=field)
    return found


def _values(request: Request) -> dict[str, Any]:
    data = JobWriteSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    if "application" in values:
        values["application"] = _by_id(request.user, Application, values["application"], "application")
    if "cluster" in values:
        values["cluster"] = _by_id(request.user, Cluster, values["cluster"], "cluster")
    return values


class JobViewSet(
    RestrictedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Scheduled jobs with their latest run's state. Filters: q, application, cluster, target_kind, suspended,
    declared, last_state. Secret header values are write-only; the signing secret is in the create answer only."""

    serializer_class = JobSerializer
    filterset_class = JobFilter
    action_rights = {
        "create": OWN,  # checked by the service at the scope the new job will have
        "runs": Action.READ,
        "run": Action.ACT,
        "suspend": Action.ACT,
        "resume": Action.ACT,
    }

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.jobs(user).select_related(None).order_by("-id")

    def _fresh(self, job: Job) -> dict[str, Any]:
        return dict(JobSerializer(self.get_queryset().get(pk=job.pk)).data)

    @extend_schema(request=JobWriteSerializer, responses={201: JobCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job, secret = job_services.job_create(by=request.user, **_values(request))
        return Response({**self._fresh(job), "signing_secret": secret}, status=status.HTTP_201_CREATED)

    @extend_schema(request=JobWriteSerializer, responses=JobSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job = self.get_object()
        saved = job_services.job_update(job=job, by=request.user, **_values(request))
        return Response(self._fresh(saved))

    @extend_schema(request=JobWriteSerializer, responses=JobSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, **kwargs)

    @extend_schema(
        request=DeleteSerializer,
        parameters=[OpenApiParameter("confirm", str, description="the job's name, typed to confirm")],
        responses={204: None},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job = self.get_object()
        body = DeleteSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        confirm = body.validated_data["confirm"] or request.query_params.get("confirm", "")
        job_services.job_delete(job=job, confirm=confirm, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=RunSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        """The job's runs, newest first (filters: state, manual, late, since)."""
        job = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(request, job)
        found = RunFilter(request.query_params, queryset=selectors.runs(request.user, job), request=request)
        if not found.is_valid():
            raise ValidationError(found.errors)
        page = self.paginate_queryset(found.qs.select_related(None).order_by("-id"))
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    @extend_schema(request=None, responses={201: RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Run now: a manual run recorded with who asked (honours the concurrency policy; works when suspended)."""
        run = run_services.job_run_now(job=self.get_object(), by=request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    def _suspend(self, request: Request, suspended: bool) -> Response:
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = job_services.job_set_suspended(
            job=self.get_object(), suspended=suspended, reason=body.validated_data["reason"], by=request.user
        )
        return Response(self._fresh(job))

    @extend_schema(request=ReasonSerializer, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, pk: str | None = None) -> Response:
        return self._suspend(request, True)

    @extend_schema(request=ReasonSerializer, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Resume: the next run is the next slot from now (missed slots never fire)."""
        return self._suspend(request, False)

    @extend_schema(request=None, responses=SecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """A new signing secret, in this answer only; signatures made with the old one stop verifying."""
        return Response({"signing_secret": job_services.job_rotate_secret(job=self.get_object(), by=request.user)})


class RunViewSet(RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Runs of every job the caller may read (filters: job, state, manual, late, since); one run with its attempts."""

    serializer_class = RunSerializer
    filterset_class = RunFilter
    action_rights = {"cancel": Action.ACT}

    def get_restricted_queryset(self, user: Any) -> Any:
        rows = restrict(user, Action.READ, Run.objects.all()).order_by("-id")
        return rows.prefetch_related("attempt_rows") if self.action == "retrieve" else rows

    def get_serializer_class(self) -> Any:
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    @extend_schema(request=ReasonSerializer, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a scheduled or running run (a Job target's Kubernetes Job is deleted with its pods)."""
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = self.get_object()
        run.job = Job.objects.get(pk=run.job_id)
        cancelled = run_services.run_cancel(run=run, by=request.user, reason=body.validated_data["reason"])
        return Response(RunSerializer(cancelled).data)


def _after(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise DomainError("an ISO 8601 date and time, e.g. 2026-03-25T00:00:00Z", field="after") from None
    if moment.tzinfo is None:
        raise DomainError("give the offset too, e.g. 2026-03-25T00:00:00Z", field="after")
    return moment


class PreviewView(APIView):
    """``GET ?schedule=30 2 * * *&timezone=Europe/Berlin[&after=2026-03-25T00:00:00Z]``: the next 10 runs (after
    now, or ``after``) in the zone and UTC, DST shifts marked."""

    @extend_schema(
        parameters=[
            OpenApiParameter("schedule", str, required=True),
            OpenApiParameter("timezone", str),
            OpenApiParameter("after", str, description="ISO 8601 with an offset; empty means now"),
        ],
        responses=PreviewSerializer,
    )
    def get(self, request: Request) -> Response:
        expression = request.query_params.get("schedule", "")
        tz = request.query_params.get("timezone", "") or "UTC"
        after = _after(request.query_params.get("after", ""))
        schedule.validate(expression, tz)
        slots = schedule.preview(expression, tz, count=PREVIEW_COUNT, after=after)
        return Response(PreviewSerializer.of(expression, tz, slots))
