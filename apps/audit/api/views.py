from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view

from apps.audit.api.serializers import AuditEventSerializer
from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilterForm, audit_events, parse_filters
from apps.core.api.pagination import CursorPagination
from apps.core.api.viewsets import ReadOnlyViewSet, ValuesListMixin


class AuditPagination(CursorPagination):
    ordering = "-seq"


FILTER_PARAMETERS = [
    OpenApiParameter(name, str, description=str(field.help_text or field.label or name))
    for name, field in AuditFilterForm.base_fields.items()
]


SEQ_PARAMETER = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The event's sequence number (seq).")


@extend_schema_view(
    list=extend_schema(parameters=FILTER_PARAMETERS), retrieve=extend_schema(parameters=[SEQ_PARAMETER])
)
class AuditEventViewSet(ValuesListMixin, ReadOnlyViewSet):
    """The audit trail, newest first. Unknown or malformed filters are a 400 naming the parameter."""

    serializer_class = AuditEventSerializer
    pagination_class = AuditPagination
    filter_backends: list[Any] = []

    def get_restricted_queryset(self, user: Any) -> QuerySet[AuditEvent]:
        filters = parse_filters(self.request.query_params) if self.action == "list" else {}
        return audit_events(viewer=user, filters=filters)
