"""What the portal pages of clusters and applications share."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page

from apps.core import portal

PAGE = 50


def page_of(items: Any, number: Any) -> Page[Any]:
    return portal.paginate(items, number, PAGE)
