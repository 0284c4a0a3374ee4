"""API base classes: every viewset reads through a selector restricted to the requesting user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated

from apps.core.api.permissions import ActionMixin, ScopedActionPermission


class RestrictedViewSetMixin(ActionMixin):
    """Subclasses implement ``get_restricted_queryset(user)`` with :func:`apps.core.access.restrict`;
    there is no unrestricted path. Objects outside it are 404; actions the role lacks are 403."""

    permission_classes: Sequence[Any] = (IsAuthenticated, ScopedActionPermission)

    def get_restricted_queryset(self, user: Any) -> QuerySet[Any]:
        raise NotImplementedError(f"{type(self).__name__} must restrict its queryset to the user")

    def get_queryset(self) -> QuerySet[Any]:
        return self.get_restricted_queryset(self.request.user)  # type: ignore[attr-defined]


class ReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """List and retrieve, through restrict()."""


class ListRetrieveDestroyViewSet(
    RestrictedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """List, retrieve and delete, through restrict(). A subclass that creates writes its own ``create``, which
    parses the request and calls its app's service (the service checks the right at the new object's scope)."""


class CreateListRetrieveUpdateViewSet(
    RestrictedViewSetMixin,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    http_method_names = ["get", "post", "patch", "head", "options"]


class ValuesListMixin:
    """List endpoints serialize rows with ``QuerySet.values()`` instead of model instances.

    For flat models whose readable serializer fields are plain model fields, this gives the same JSON
    as the serializer at a fraction of the cost (no model instances, no per-field objects). The
    fields are derived from the serializer once, so it stays the single source of truth; a test
    compares both outputs for each viewset that uses this.
    """

    _values_fields: tuple[str, ...] | None = None

    @classmethod
    def values_fields(cls) -> tuple[str, ...]:
        if cls._values_fields is None:
            serializer = cls.serializer_class()  # type: ignore[attr-defined]
            fields = tuple(name for name, field in serializer.fields.items() if not field.write_only)
            for name in fields:
                source = serializer.fields[name].source
                if source != name or "." in source:
                    raise TypeError(f"{cls.__name__}: field {name!r} is not a plain model field")
            cls._values_fields = fields
        return cls._values_fields

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        from rest_framework.response import Response

        queryset = self.filter_queryset(self.get_queryset()).values(*self.values_fields())  # type: ignore[attr-defined]
        page = self.paginate_queryset(queryset)  # type: ignore[attr-defined]
        if page is not None:
            return self.get_paginated_response(page)  # type: ignore[attr-defined]
        return Response(list(queryset))
