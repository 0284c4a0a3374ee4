"""Request id and request context for every HTTP request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from apps.core import context

REQUEST_ID_HEADER = "X-Request-ID"


def client_ip(request: HttpRequest) -> str:
    """The peer address. Behind a proxy, REMOTE_ADDR is set by the ASGI server's proxy-headers handling."""
    return str(request.META.get("REMOTE_ADDR") or "")


class HybridMiddleware:
    """Base for ICC middleware: sync- and async-capable, so under ASGI it adds no thread hop.

    Subclasses implement ``before(request)`` and/or ``after(request, response)`` (both plain functions).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        self.before(request)
        response = self.get_response(request)
        self.after(request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        self.before(request)
        response = await self.get_response(request)
        self.after(request, response)
        return response

    def before(self, request: HttpRequest) -> None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> None:
        return None


class RequestIdMiddleware(HybridMiddleware):
    """Accepts X-Request-ID (or makes one), exposes it on the request, the logs and the response."""

    def before(self, request: HttpRequest) -> None:
        request_id = context.accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        path = request.path
        source = "api" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "portal"
        context.start(
            request_id=request_id,
            client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:512],
            source=source,
        )

    def after(self, request: HttpRequest, response: HttpResponse) -> None:
        response[REQUEST_ID_HEADER] = request.request_id  # type: ignore[attr-defined]


class RequestUserMiddleware(HybridMiddleware):
    """After authentication: expose the (still lazy) user to services through the request context."""

    def before(self, request: HttpRequest) -> None:
        context.bind(user=getattr(request, "user", None))
