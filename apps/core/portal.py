"""Helpers every portal view uses: refusals that are audited, filter forms, pagination, live tables and topics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.core.access import can
from apps.core.signals import access_denied

PAGE = 50


def deny(request: HttpRequest, action: str, target: Any) -> None:
    """Refuse (403) and record the attempt as denied (``portal.<action>``)."""
    access_denied.send(
        sender=type(target) if target is not None else None,
        action=f"portal.{action}",
        target_id=str(getattr(target, "pk", "") or ""),
        message="not allowed",
        path=request.path,
    )
    raise PermissionDenied(action)


def require(request: HttpRequest, action: str, obj: Any, what: str) -> None:
    """Refuse unless the viewer may perform ``action`` on ``obj`` (``what`` names it in the audit trail)."""
    if not can(request.user, action, obj):
        deny(request, what, obj)


def valid_filters(form: Any) -> dict[str, Any]:
    """The valid filter values of a bound filter form (an invalid one is shown as an error and ignored)."""
    if not form.is_bound:
        return {}
    form.is_valid()
    return {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}


def query_string(filters: dict[str, Any]) -> str:
    """The filters as a query string, for pagination links (``page`` is added by the link)."""
    return urlencode({k: v for k, v in filters.items() if k != "page"})


def paginate(items: Any, number: Any, per_page: int = PAGE) -> Page[Any]:
    return Paginator(items, per_page).get_page(number)


def live(*topics: str) -> str:
    """The ``topics`` query value of a page's websocket: the non-empty names, comma-separated."""
    return ",".join(t for t in topics if t)


def table_view(
    template: str, context: Callable[[HttpRequest], dict[str, Any]]
) -> Callable[[HttpRequest], HttpResponse]:
    """The view that renders a list page's table alone (htmx swaps it in when the page's live topic changes),
    with the same ``context`` as the page, so the filters and the page number are those the viewer chose."""

    @login_required
    @require_GET
    def table(request: HttpRequest) -> HttpResponse:
        return render(request, template, context(request))

    return table
