"""Anonymous first: an API request without any credentials is a 401 before any view looks anything up.

Rule: a request under ``/api/`` with neither an ``Authorization`` header nor a session cookie is answered 401
here, before URL arguments reach a view, so an outsider learns nothing about which ids exist (the kill switch
of application 1 and of application 999999 answer the same). Only the schema and its documentation pages are
public. Such refusals are counted in ``icc_api_anonymous_denied_total{route}`` (the URL pattern, never the raw
path) instead of being appended to the audit chain one by one: anonymous noise cannot flood it. Requests that
carry credentials, valid or not, go on to DRF, where refusals of principals stay audited.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from apps.core import context
from apps.core.metrics import API_ANONYMOUS_DENIED
from apps.core.middleware import HybridMiddleware

API_PREFIX = "/api/"
PUBLIC_API_PATHS = ("/api/v1/schema/", "/api/v1/docs/", "/api/v1/redoc/")
NOT_PROVIDED = "Authentication credentials were not provided."


def has_credentials(request: HttpRequest) -> bool:
    """Whether the request presents anything that could authenticate it (checked later, by DRF)."""
    return bool(request.headers.get("Authorization")) or settings.SESSION_COOKIE_NAME in request.COOKIES


def route_of(request: HttpRequest) -> str:
    """The URL pattern the request matches (``api/v1/clusters/<pk>/``), so the metric's labels stay bounded."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "unmatched"
    return str(match.route or match.view_name or "unmatched")


def count_anonymous(request: HttpRequest) -> None:
    API_ANONYMOUS_DENIED.labels(route=route_of(request)).inc()


def not_authenticated_response() -> JsonResponse:
    """The body and header DRF gives a NotAuthenticated (see apps.core.api.exceptions)."""
    body = {
        "error": {"status": 401, "code": "not_authenticated", "message": NOT_PROVIDED, "fields": {}},
        "request_id": context.current().request_id,
    }
    response = JsonResponse(body, status=401)
    response["WWW-Authenticate"] = "Bearer"
    return response


class AnonymousFirstMiddleware(HybridMiddleware):
    """Answers credential-less API requests 401 before any view runs (sync and async, no thread hop)."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        path = request.path
        if not path.startswith(API_PREFIX) or path.startswith(PUBLIC_API_PATHS) or has_credentials(request):
            return None
        count_anonymous(request)
        return not_authenticated_response()
