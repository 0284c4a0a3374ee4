"""Service accounts: non-human identities owned by a team, acting through API tokens."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.access import Action, restrict
from apps.core.api.permissions import OWN
from apps.core.api.serializers import StrictSerializer
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.core.errors import DomainError
from apps.users.models import User
from apps.users.services import service_account_create


class ServiceAccountSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="owner_team.name", read_only=True, default=None)

    class Meta:
        model = User
        fields = ("id", "username", "display_name", "team", "is_active", "date_joined")
        read_only_fields = fields


class ServiceAccountCreateSerializer(StrictSerializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    team = serializers.CharField(max_length=100)
    display_name = serializers.CharField(required=False, default="", allow_blank=True, max_length=150)


class ServiceAccountViewSet(
    RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Service accounts you can read; creating one needs global ``configure`` (checked by the service)."""

    serializer_class = ServiceAccountSerializer
    action_rights = {"create": OWN}

    def get_restricted_queryset(self, user: Any) -> QuerySet[User]:
        return restrict(user, Action.READ, User.objects.filter(is_service_account=True)).select_related("owner_team")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ServiceAccountCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            account = service_account_create(
                by=request.user,  # type: ignore[arg-type]
                username=v["username"],
                team_name=v["team"],
                display_name=v["display_name"],
            )
        except ValidationError as exc:
            name, messages = next(iter(exc.message_dict.items()))
            raise DomainError(" ".join(messages), field=name) from None
        return Response(ServiceAccountSerializer(account).data, status=status.HTTP_201_CREATED)
