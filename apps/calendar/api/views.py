"""Calendar API: entries (create, change and delete need ``configure`` at the entry's scope), the occurrences in a
range, and the status question "is X frozen now, and until when". Writes parse input and call the services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.calendar import selectors, services
from apps.calendar.api.filters import CalendarEntryFilter
from apps.calendar.api.serializers import (
    CalendarEntrySerializer,
    CalendarEntryWriteSerializer,
    CalendarOccurrenceSerializer,
    CalendarStatusSerializer,
)
from apps.core.api.permissions import OWN
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.core.errors import DomainError

MAX_RANGE = timedelta(days=92)


def _values(request: Request) -> dict[str, Any]:
    data = CalendarEntryWriteSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class CalendarEntryViewSet(
    RestrictedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Freezes and maintenance windows the caller may read (their scopes' and those above them that affect them).
    Filters: q, kind, enabled, scope_kind, scope_cluster."""

    serializer_class = CalendarEntrySerializer
    filterset_class = CalendarEntryFilter
    action_rights = {"create": OWN}  # checked by the service at the new entry's scope

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.entries(user).order_by("-id")

    @extend_schema(request=CalendarEntryWriteSerializer, responses={201: CalendarEntrySerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        entry = services.entry_create(by=request.user, **_values(request))
        return Response(CalendarEntrySerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CalendarEntryWriteSerializer, responses=CalendarEntrySerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        entry = services.entry_update(self.get_object(), by=request.user, **_values(request))
        return Response(CalendarEntrySerializer(entry).data)

    @extend_schema(request=CalendarEntryWriteSerializer, responses=CalendarEntrySerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.entry_delete(self.get_object(), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _moment(request: Request, name: str, default: datetime) -> datetime:
    raw = request.query_params.get(name, "")
    if not raw:
        return default
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise DomainError("an ISO 8601 date and time, e.g. 2026-03-25T00:00:00Z", field=name) from None
    if moment.tzinfo is None:
        raise DomainError("give the offset too, e.g. 2026-03-25T00:00:00Z", field=name)
    return moment


def _only(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise DomainError(f"unknown parameter {unknown[0]!r}", field=unknown[0])


class CalendarOccurrencesView(APIView):
    """The occurrences (UTC) overlapping [start, end) of the entries the caller reads, at most 92 days, at most
    500 occurrences. Filters: kind."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(
        parameters=[
            OpenApiParameter("start", str, description="ISO 8601 with offset (default: now)"),
            OpenApiParameter("end", str, description="ISO 8601 with offset (default: start + 31 days)"),
            OpenApiParameter("kind", str, description="freeze or maintenance"),
        ],
        responses=CalendarOccurrenceSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        _only(request, {"start", "end", "kind"})
        start = _moment(request, "start", datetime.now(UTC))
        end = _moment(request, "end", start + timedelta(days=31))
        if not start < end <= start + MAX_RANGE:
            raise DomainError("end is after start, at most 92 days later", field="end")
        kind = request.query_params.get("kind", "")
        if kind and kind not in ("freeze", "maintenance"):
            raise DomainError("freeze or maintenance", field="kind")
        rows = selectors.entries(request.user, kind=kind, enabled=True)
        return Response([s.as_dict() for s in selectors.occurrences(rows, start, end)])


class CalendarStatusView(APIView):
    """Is this place frozen (or in maintenance) now, and until when; and the next windows. ``cluster`` is a cluster
    id; without one, the global calendar. The caller must read there."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(
        parameters=[
            OpenApiParameter("cluster", str),
            OpenApiParameter("namespace", str),
            OpenApiParameter("application", str),
            OpenApiParameter("at", str, description="ISO 8601 with offset (default: now)"),
        ],
        responses=CalendarStatusSerializer,
    )
    def get(self, request: Request) -> Response:
        _only(request, {"cluster", "namespace", "application", "at"})
        params = {k: request.query_params.get(k, "").strip() for k in ("cluster", "namespace", "application")}
        if (params["namespace"] or params["application"]) and not params["cluster"]:
            raise DomainError("name the cluster (its id) too", field="cluster")
        if params["cluster"] and not params["cluster"].isdigit():
            raise DomainError("a cluster id (a whole number)", field="cluster")
        asked, rights = selectors.asked_scope(**params)
        if not selectors.may_ask(request.user, rights):
            raise PermissionDenied("your role does not allow reading there")
        at = _moment(request, "at", datetime.now(UTC))
        return Response(selectors.status(asked, at))
