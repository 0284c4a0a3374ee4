from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend


class FilterBackend(DjangoFilterBackend):
    """django-filter, skipped when the request names none of the filterset's filters.

    Building and validating a FilterSet form costs about as much as fetching a page of rows; most
    list requests carry no filter at all. Invalid filter values still give a 400 naming the field.
    """

    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or not set(request.query_params).intersection(filterset_class.base_filters):
            return queryset
        return super().filter_queryset(request, queryset, view)
