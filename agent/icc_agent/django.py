"""For Django: ``"icc_agent.django.RouteMiddleware"`` in ``MIDDLEWARE`` hands the matched URL pattern
(``request.resolver_match.route``, e.g. ``/items/<int:pk>/``) to the ASGI or WSGI middleware wrapping the Django
application, which otherwise only knows the raw path. Django itself is not imported here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("icc_agent")


def route_of(request: Any) -> str | None:
    """The URL pattern Django matched for ``request``, with a leading slash (None when nothing matched)."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not isinstance(route, str) or not route:
        return None
    return route if route.startswith("/") else "/" + route


class RouteMiddleware:
    """Puts the matched pattern into the WSGI environ or the ASGI scope as ``icc.route``."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        try:
            route = route_of(request)
            if route:
                carrier = getattr(request, "scope", None)  # ASGI: the scope the middleware holds
                if not isinstance(carrier, dict):
                    carrier = getattr(request, "environ", None)  # WSGI: the environ the middleware holds
                if isinstance(carrier, dict):
                    carrier["icc.route"] = route
        except Exception:  # fail open: the response goes out without a route template
            logger.debug("icc_agent: no route template for this request", exc_info=True)
        return response
