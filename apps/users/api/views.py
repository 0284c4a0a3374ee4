from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from rest_framework.permissions import BasePermission

from apps.core.api.viewsets import CreateListRetrieveUpdateViewSet, ValuesListMixin
from apps.users import selectors
from apps.users.api.serializers import UserSerializer
from apps.users.models import User


class StaffWrites(BasePermission):
    """Anyone logged in reads what the selector lets them see; only staff create or change users."""

    message = "Only staff may create or change users."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return bool(request.user and request.user.is_staff)


class UserFilter(filters.FilterSet):
    username = filters.CharFilter(lookup_expr="icontains")
    email = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = User
        fields = ("username", "email", "is_active", "is_staff")


class UserViewSet(ValuesListMixin, CreateListRetrieveUpdateViewSet):
    serializer_class = UserSerializer
    filterset_class = UserFilter
    permission_classes = [*CreateListRetrieveUpdateViewSet.permission_classes, StaffWrites]

    def get_restricted_queryset(self, user: Any) -> QuerySet[User]:
        return selectors.user_list(viewer=user)
