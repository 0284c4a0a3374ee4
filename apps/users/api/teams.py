"""Teams API: global admins create teams and set the members of local ones."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.access import Action, restrict
from apps.core.api.permissions import OWN
from apps.core.api.serializers import StrictSerializer
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.users.models import Team
from apps.users.services import team_create, team_set_members


class TeamSerializer(serializers.ModelSerializer):
    members: Any = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ("id", "name", "display_name", "source", "members", "created_at")
        read_only_fields = fields


class TeamCreateSerializer(StrictSerializer):
    name = serializers.SlugField(max_length=100)
    display_name = serializers.CharField(required=False, default="", allow_blank=True, max_length=150)


class TeamMembersSerializer(StrictSerializer):
    members = serializers.ListField(child=serializers.CharField(max_length=150), max_length=1000)


class TeamViewSet(RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Teams you can read (all for global readers; yours otherwise). Changes need global ``configure``."""

    serializer_class = TeamSerializer
    action_rights = {"create": OWN, "members": OWN}  # the services check global configure and name it

    def get_restricted_queryset(self, user: Any) -> QuerySet[Team]:
        return restrict(user, Action.READ, Team.objects.prefetch_related("members")).order_by("name").distinct()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = TeamCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = team_create(by=request.user, **data.validated_data)  # type: ignore[arg-type]
        return Response(TeamSerializer(team).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["put"])
    def members(self, request: Request, pk: str | None = None) -> Response:
        """Replace the member list of a local team: ``{"members": ["alice", "bob"]}``."""
        data = TeamMembersSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = team_set_members(by=request.user, team=self.get_object(), usernames=data.validated_data["members"])  # type: ignore[arg-type]
        return Response(TeamSerializer(team).data)
