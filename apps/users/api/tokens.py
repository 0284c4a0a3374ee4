"""Personal API tokens and service-account tokens: the secret is in the create response only."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.access import GLOBAL, Action, can_at, restrict
from apps.core.api.permissions import OWN
from apps.core.api.serializers import StrictSerializer
from apps.core.api.viewsets import ListRetrieveDestroyViewSet
from apps.core.errors import DomainError, ForbiddenError
from apps.users.models import ApiToken, User
from apps.users.tokens import token_create, token_revoke


class ApiTokenSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = (
            "id",
            "name",
            "owner",
            "prefix",
            "restrictions",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "revoked_at",
            "created_at",
        )
        read_only_fields = fields


class ApiTokenCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False)
    restrictions = serializers.JSONField(required=False)
    service_account = serializers.CharField(required=False, max_length=150, help_text="username of a service account")


class ApiTokenViewSet(ListRetrieveDestroyViewSet):
    """Your tokens (admins with global configure rights see all). DELETE revokes; nothing is erased."""

    serializer_class = ApiTokenSerializer
    action_rights = {"create": OWN, "destroy": OWN}  # anyone signed in; visibility decides whose tokens

    def get_restricted_queryset(self, user: Any) -> QuerySet[ApiToken]:
        """Rule: you see your own tokens; those who may configure globally see every token."""
        admin_visible = restrict(user, Action.CONFIGURE, ApiToken.objects.all())
        own = Q(user=user) if getattr(user, "is_authenticated", False) else Q(pk__in=[])
        return (ApiToken.objects.filter(own) | admin_visible).select_related("user").order_by("-id").distinct()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ApiTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        requester: User = request.user  # type: ignore[assignment]  # IsAuthenticated ran first
        owner: User | None = requester
        if values.get("service_account"):
            if not can_at(request.user, Action.CONFIGURE, GLOBAL):
                raise ForbiddenError("only global admins create service-account tokens", field="service_account")
            owner = User.objects.filter(username=values["service_account"], is_service_account=True).first()
        if owner is None:
            raise DomainError("no such service account", field="service_account")
        token, secret = token_create(
            owner=owner,
            name=values["name"],
            by=requester,
            expires_at=values.get("expires_at"),
            restrictions=values.get("restrictions"),
        )
        body = {**ApiTokenSerializer(token).data, "token": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiToken) -> None:
        token_revoke(token=instance, by=self.request.user)  # type: ignore[arg-type]
