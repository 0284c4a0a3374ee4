"""API base classes: every viewset reads through a selector restricted to the requesting user."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, viewsets


class RestrictedViewSetMixin:
    """Subclasses implement ``get_restricted_queryset(user)``; there is no unrestricted path."""

    def get_restricted_queryset(self, user: Any) -> QuerySet[Any]:
        raise NotImplementedError(f"{type(self).__name__} must restrict its queryset to the user")

    def get_queryset(self) -> QuerySet[Any]:
        return self.get_restricted_queryset(self.request.user)  # type: ignore[attr-defined]


class ReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class CreateListRetrieveUpdateViewSet(
    RestrictedViewSetMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    http_method_names = ["get", "post", "patch", "head", "options"]
