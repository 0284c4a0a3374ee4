"""Request id and request context for every HTTP request."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core import context

REQUEST_ID_HEADER = "X-Request-ID"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def parse_ip(value: object) -> Address | None:
    """An address from REMOTE_ADDR or one X-Forwarded-For entry (``[v6]:port`` and ``v4:port`` too); else None."""
    text = str(value or "").strip()[:64].split("%", 1)[0]  # no IPv6 zone (PostgreSQL's inet has none)
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_ip(request: HttpRequest) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy (``TRUSTED_PROXIES``).

    Rule: X-Forwarded-For is read only when the direct peer (REMOTE_ADDR, the ASGI server's view, which
    is not rewritten from headers) is inside a trusted CIDR; then the right-most address of the chain that
    is not itself a trusted proxy is the client. Entries left of it were written by the client and prove
    nothing. A malformed entry stops the walk at the last hop that could be vouched for. Always a valid
    address, or "" when the peer is not an IP address (a unix socket).
    """
    peer = parse_ip(request.META.get("REMOTE_ADDR"))
    if peer is None:
        return ""
    trusted = _networks(tuple(settings.TRUSTED_PROXIES))
    if not trusted or not any(peer in net for net in trusted):
        return str(peer)
    chain = str(request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",")
    client = peer
    for entry in reversed(chain):
        if not entry.strip():
            continue
        hop = parse_ip(entry)
        if hop is None:
            break
        client = hop
        if not any(hop in net for net in trusted):
            break
    return str(client)


def peer_is_trusted_proxy(request: HttpRequest) -> bool:
    """Is the direct peer inside ``TRUSTED_PROXIES``?"""
    peer = parse_ip(request.META.get("REMOTE_ADDR"))
    trusted = _networks(tuple(settings.TRUSTED_PROXIES))
    return peer is not None and any(peer in net for net in trusted)


class HybridMiddleware:
    """Base for ICC middleware: sync- and async-capable, so under ASGI it adds no thread hop.

    Subclasses implement ``before(request)`` (returning a response answers at once, skipping the view)
    and/or ``after(request, response)`` (both plain functions).
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
        early = self.before(request)
        if early is not None:
            return early
        response = self.get_response(request)
        self.after(request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        early = self.before(request)
        if early is not None:
            return early
        response = await self.get_response(request)
        self.after(request, response)
        return response

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> None:
        return None


class RequestIdMiddleware(HybridMiddleware):
    """Accepts X-Request-ID (or makes one), exposes it on the request, the logs and the response; drops an
    X-Forwarded-Proto that no trusted proxy sent."""

    def before(self, request: HttpRequest) -> None:
        # Rule: X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER) is believed only from a trusted proxy; a client
        # talking to ICC directly cannot claim HTTPS (which would skip the redirect and HSTS).
        if "HTTP_X_FORWARDED_PROTO" in request.META and not peer_is_trusted_proxy(request):
            del request.META["HTTP_X_FORWARDED_PROTO"]
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
