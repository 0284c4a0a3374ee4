"""Strict filters every API list uses: each bad value is a 400 naming the parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

from apps.core.selectors import contains_any


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


BOOLEAN_CHOICES = [("true", "true"), ("false", "false"), ("1", "1"), ("0", "0")]


def _boolean(value: str) -> bool:
    return value in ("true", "1")


class StrictBooleanFilter(filters.TypedChoiceFilter):
    """``true``/``false`` (or 1/0); anything else is refused, where django-filter would silently ignore it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("choices", BOOLEAN_CHOICES)
        kwargs.setdefault("coerce", _boolean)
        super().__init__(*args, **kwargs)


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=name`` or ``-name`` among the view's ``ordering_fields``; an unknown field is a 400.

    The id is always appended as the last key so cursor pages are stable when the first key repeats."""

    def get_ordering(self, request: Any, queryset: QuerySet[Any], view: Any) -> Sequence[str]:
        raw = request.query_params.get(self.ordering_param)
        default: tuple[str, ...] = tuple(getattr(view, "ordering", None) or ("id",))
        if raw is None:
            return default
        allowed = tuple(getattr(view, "ordering_fields", ()) or ())
        terms = [term.strip() for term in raw.split(",") if term.strip()]
        if len(terms) != 1 or terms[0].lstrip("-") not in allowed:
            choices = ", ".join(f"{name}, -{name}" for name in allowed)
            raise ValidationError({self.ordering_param: [f"Order by one of: {choices}."]})
        term = terms[0]
        if term.lstrip("-") == "id":
            return (term,)
        return (term, "-id" if term.startswith("-") else "id")

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        allowed = tuple(getattr(view, "ordering_fields", ()) or ())
        for param in params:
            param["schema"] = {"type": "string", "enum": [*allowed, *(f"-{name}" for name in allowed)]}
        return params


class IdFilter(filters.NumberFilter):
    """A row id: a whole number (``1.5`` or ``abc`` is refused naming the parameter)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class SearchFilter(filters.CharFilter):
    """``q``: rows holding the text (in any case) in one of ``fields``; one declaration, no FilterSet method."""

    def __init__(self, fields: Sequence[str], *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 200)
        super().__init__(*args, **kwargs)
        self.search_fields = tuple(fields)

    def filter(self, qs: QuerySet[Any], value: str | None) -> QuerySet[Any]:
        value = (value or "").strip()
        return qs.filter(contains_any(self.search_fields, value)) if value else qs


def search_method(fields: tuple[str, ...]) -> Any:
    """A FilterSet ``method`` for ``q``: case-insensitive substring of any of ``fields``."""

    def method(self: filters.FilterSet, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        value = value.strip()
        return queryset.filter(contains_any(fields, value)) if value else queryset

    return method
