from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from apps.core.api.viewsets import CreateListRetrieveUpdateViewSet, ValuesListMixin
from apps.users import selectors
from apps.users.api.serializers import UserSerializer
from apps.users.models import User


class UserFilter(filters.FilterSet):
    username = filters.CharFilter(lookup_expr="icontains")
    email = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = User
        fields = ("username", "email", "is_active", "is_staff")


class UserViewSet(ValuesListMixin, CreateListRetrieveUpdateViewSet):
    serializer_class = UserSerializer
    filterset_class = UserFilter

    def get_restricted_queryset(self, user: Any) -> QuerySet[User]:
        return selectors.user_list(viewer=user)
