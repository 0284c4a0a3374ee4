"""Role bindings API: admins grant and remove roles within their scope."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.access import Action, Scope, restrict
from apps.core.api.permissions import OWN
from apps.core.api.serializers import StrictSerializer
from apps.core.api.viewsets import ListRetrieveDestroyViewSet
from apps.core.errors import DomainError
from apps.users.bindings import binding_create, binding_delete
from apps.users.models import RoleBinding, Team, User


class RoleBindingSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True, default=None)
    team = serializers.CharField(source="team.name", read_only=True, default=None)

    class Meta:
        model = RoleBinding
        fields = (
            "id",
            "role",
            "user",
            "team",
            "scope_kind",
            "scope_cluster",
            "scope_namespace",
            "scope_application",
            "expires_at",
            "source",
            "created_at",
        )
        read_only_fields = fields


class RoleBindingCreateSerializer(StrictSerializer):
    role = serializers.CharField(max_length=10)
    user = serializers.CharField(required=False, max_length=150)
    team = serializers.CharField(required=False, max_length=100)
    scope_kind = serializers.CharField(required=False, default="global", max_length=12)
    scope_cluster = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
    scope_namespace = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
    scope_application = serializers.CharField(required=False, default="", allow_blank=True, max_length=150)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class RoleBindingViewSet(ListRetrieveDestroyViewSet):
    """Bindings you can read (in your scopes, and your own). Creating and deleting need ``configure``
    at the binding's scope (checked by the service, which names the scope in its 403)."""

    serializer_class = RoleBindingSerializer
    action_rights = {"create": OWN, "destroy": OWN}

    def get_restricted_queryset(self, user: Any) -> QuerySet[RoleBinding]:
        return restrict(user, Action.READ, RoleBinding.objects.select_related("user", "team")).order_by("-id")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = RoleBindingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        user = team = None
        if v.get("user"):
            user = User.objects.filter(username=v["user"]).first()
            if user is None:
                raise DomainError(f"no user {v['user']!r}", field="user")
        if v.get("team"):
            team = Team.objects.filter(name=v["team"]).first()
            if team is None:
                raise DomainError(f"no team {v['team']!r}", field="team")
        binding = binding_create(
            by=request.user,  # type: ignore[arg-type]
            role=v["role"],
            user=user,
            team=team,
            expires_at=v.get("expires_at"),
            scope=Scope(v["scope_kind"], v["scope_cluster"], v["scope_namespace"], v["scope_application"]),
        )
        return Response(RoleBindingSerializer(binding).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: RoleBinding) -> None:
        binding_delete(by=self.request.user, binding=instance)  # type: ignore[arg-type]
