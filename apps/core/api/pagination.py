from __future__ import annotations

from typing import Any

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable cursor pagination (no COUNT query): ``?cursor=...&limit=1..500``, newest first by default."""

    page_size = 50
    max_page_size = 500
    page_size_query_param = "limit"
    ordering = "-id"

    def get_page_size(self, request: Any) -> int | None:
        _strict_limit(request, self.page_size_query_param or "limit", self.max_page_size or 500)
        return super().get_page_size(request)


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_limit(self, request: Any) -> int | None:
        _strict_limit(request, self.limit_query_param, self.max_limit or 500)
        return super().get_limit(request)


def _strict_limit(request: Any, param: str, maximum: int) -> None:
    """Refuse a page size that is not an integer in 1..maximum, naming the parameter."""
    raw = request.query_params.get(param)
    if raw is None:
        return
    from rest_framework.exceptions import ValidationError

    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({param: [f"{raw!r} is not an integer."]}) from None
    if not 1 <= value <= maximum:
        raise ValidationError({param: [f"Must be between 1 and {maximum}."]})
