"""Compliance exceptions in the API, under /api/v1/compliance/exceptions/: list (filters state, policy, check,
expiring_within_days, scope_kind, cluster, namespace, application), one exception, ``POST`` to request one, and
``POST {id}/approve/`` and ``{id}/revoke/``.

A caller sees the exceptions whose scope lies within what they may read. Requesting needs the operator role at the
exception's scope; approving needs configure rights there and someone other than who asked (four eyes); revoking
needs configure rights and a reason. The serializers check types only; the services check everything else, naming
the field (400), the right (403) or the state (409).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.compliance import exception_selectors as selectors
from apps.compliance.models import ExceptionState, Policy, PolicyException
from apps.compliance.services import exceptions as services
from apps.core.access import Action, ScopeKind
from apps.core.api.filters import IdFilter
from apps.core.api.permissions import OWN
from apps.core.api.serializers import StrictSerializer
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.core.errors import DomainError

MAX_EXPIRING_DAYS = 3650


class PolicyExceptionSerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy.key", read_only=True, help_text="the policy's key")
    state = serializers.SerializerMethodField(help_text="pending, active, expired or revoked, now")
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True)
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, allow_null=True)

    class Meta:
        model = PolicyException
        fields = (
            "id",
            "policy",
            "check_id",
            "scope_kind",
            "scope_cluster",
            "scope_namespace",
            "scope_application",
            "match_names",
            "match_labels",
            "image_pattern",
            "reason",
            "owner",
            "ticket_url",
            "expires_at",
            "state",
            "requested_by",
            "approved_by",
            "approved_at",
            "revoked_at",
            "created_at",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ExceptionState.choices))
    def get_state(self, exception: PolicyException) -> str:
        return str(exception.state_at(datetime.now(UTC)))


class PolicyExceptionRequestSerializer(StrictSerializer):
    """Types only: the policy by its key, the scope as access control writes it (a cluster by id), the rest as
    stored. The service validates each value and names the field at fault."""

    policy = serializers.SlugField(max_length=100)
    check_id = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    scope_kind = serializers.ChoiceField(choices=ScopeKind.choices, required=False, default=ScopeKind.GLOBAL)
    scope_cluster = serializers.CharField(required=False, allow_blank=True, max_length=32, default="")
    scope_namespace = serializers.CharField(required=False, allow_blank=True, max_length=253, default="")
    scope_application = serializers.CharField(required=False, allow_blank=True, max_length=253, default="")
    match_names = serializers.ListField(child=serializers.CharField(max_length=253), required=False, default=list)
    match_labels = serializers.DictField(child=serializers.CharField(max_length=253), required=False, default=dict)
    image_pattern = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    reason = serializers.CharField(max_length=2000)
    owner = serializers.CharField(max_length=150)
    ticket_url = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    expires_at = serializers.DateTimeField(help_text="ISO 8601 with an offset, within the administrator's maximum")


class ExceptionRevokeSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, help_text="why it ends (recorded in the audit trail)")


class DaysFilter(django_filters.NumberFilter):
    """A whole number of days from 0 to ten years (``1.5`` or ``soon`` is refused naming the parameter)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_EXPIRING_DAYS)
        super().__init__(*args, **kwargs)


class PolicyExceptionFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ExceptionState.choices, method="by_state")
    policy = django_filters.CharFilter(field_name="policy__key", max_length=100)
    check = django_filters.CharFilter(field_name="check_id", max_length=200)
    expiring_within_days = DaysFilter(method="by_expiry", label="active and expiring within N days")
    scope_kind = django_filters.ChoiceFilter(choices=ScopeKind.choices)
    cluster = IdFilter(field_name="scope_cluster")
    namespace = django_filters.CharFilter(field_name="scope_namespace", max_length=253)
    application = django_filters.CharFilter(
        field_name="scope_application", max_length=253, label="an application's name"
    )

    class Meta:
        model = PolicyException
        fields = (
            "state",
            "policy",
            "check",
            "expiring_within_days",
            "scope_kind",
            "cluster",
            "namespace",
            "application",
        )

    def by_state(self, queryset: Any, name: str, value: str) -> Any:
        return queryset.filter(selectors.state_q(value, datetime.now(UTC))) if value else queryset

    def by_expiry(self, queryset: Any, name: str, value: int | None) -> Any:
        if value is None:
            return queryset
        now = datetime.now(UTC)
        active = selectors.state_q(ExceptionState.ACTIVE, now)
        return queryset.filter(active, expires_at__lte=now + timedelta(days=int(value)))


def _policy(key: str) -> Policy:
    found = Policy.objects.filter(key=key).first()
    if found is None:
        raise DomainError(f"no policy {key!r}", field="policy")
    return found


class PolicyExceptionViewSet(
    RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Exceptions to a policy (or one check of it) at a scope, for matching workloads, with an owner, a reason and
    an expiry; in force only once a second person with configure rights approved them."""

    serializer_class = PolicyExceptionSerializer
    filterset_class = PolicyExceptionFilter
    action_rights = {
        "create": OWN,  # the service checks the operator role at the scope the exception will have
        "approve": Action.CONFIGURE,
        "revoke": Action.CONFIGURE,
    }

    def get_restricted_queryset(self, user: Any) -> Any:
        return selectors.exceptions(user).order_by("-id")

    def _fresh(self, exception: PolicyException) -> dict[str, Any]:
        return dict(PolicyExceptionSerializer(self.get_queryset().get(pk=exception.pk)).data)

    @extend_schema(request=PolicyExceptionRequestSerializer, responses={201: PolicyExceptionSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = PolicyExceptionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        values["policy"] = _policy(values["policy"])
        exception = services.exception_request(by=request.user, **values)
        return Response(self._fresh(exception), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=PolicyExceptionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve a pending exception (configure rights, and not the person who asked): it applies from the next
        evaluation, which starts at once."""
        exception = services.exception_approve(exception=self.get_object(), by=request.user)
        return Response(self._fresh(exception))

    @extend_schema(request=ExceptionRevokeSerializer, responses=PolicyExceptionSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """End a pending or active exception now (configure rights; a reason)."""
        body = ExceptionRevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        exception = services.exception_revoke(
            exception=self.get_object(), by=request.user, reason=body.validated_data["reason"]
        )
        return Response(self._fresh(exception))
