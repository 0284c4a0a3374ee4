"""ASGI middleware: samples HTTP requests of any ASGI application (Starlette, FastAPI, Django, Quart...).

The route template comes from the framework once the application has answered: ``scope["route"].path`` (FastAPI,
Starlette routers; prefixed with what a Mount added to ``root_path``), else ``scope["icc.route"]`` (set by
``icc_agent.django.RouteMiddleware``), else the configured ``route_of(scope)``, else ``unmatched`` — never the raw
path, whose ids would make every request a route of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from icc_agent.agent import Agent
from icc_agent.recording import Recording

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def framework_route(scope: Scope, root_path: str) -> str | None:
    """The template the framework matched, if it says."""
    marked = scope.get("icc.route")
    if isinstance(marked, str) and marked:
        return marked
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        mounted = str(scope.get("root_path") or "")
        prefix = mounted[len(root_path) :] if mounted.startswith(root_path) else ""
        return prefix + path
    return None


def _text(raw: Any) -> str:
    return raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)


class ASGIMiddleware:
    """``app = ASGIMiddleware(app)``: settings as keyword arguments or ``ICC_*`` variables (see icc_agent.config);
    pass ``agent=`` to share one agent between several middleware instances."""

    def __init__(self, app: ASGIApp, agent: Agent | None = None, **settings: Any) -> None:
        self.app = app
        self.agent = agent if agent is not None else Agent(**settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or not self.agent.admit():
            await self.app(scope, receive, send)
            return
        root_path = str(scope.get("root_path") or "")
        authorization = any(name.lower() == b"authorization" for name, _ in scope.get("headers") or ())
        recording = self.agent.start(str(scope.get("method") or "GET"), authorization=authorization)
        if recording is None:
            await self.app(scope, receive, send)
            return

        async def observed(message: Message) -> None:
            try:
                _observe(recording, message)
            except Exception:  # fail open: a sample may be incomplete, the response is not
                self.agent.broken()
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except BaseException:
            recording.status = recording.status or 500  # what the server answers when nothing was sent
            raise
        finally:
            self.agent.finish(recording, _route(scope, root_path), scope)


def _route(scope: Scope, root_path: str) -> str | None:
    try:
        return framework_route(scope, root_path)
    except Exception:
        return None


def _observe(recording: Recording, message: Message) -> None:
    kind = message.get("type")
    if kind == "http.response.start":
        headers = [(_text(name), _text(value)) for name, value in message.get("headers") or ()]
        recording.response(int(message.get("status") or 0), headers)
    elif kind == "http.response.body":
        body = message.get("body") or b""
        recording.body(body if isinstance(body, bytes) else bytes(body))
