"""WSGI middleware: samples the requests of any WSGI application (Django, Flask, Pyramid...).

The route template is ``environ["icc.route"]`` when the framework put it there (``icc_agent.django.RouteMiddleware``
does for Django), else the configured ``route_of(environ)``, else ``unmatched``; never the raw path. The sample is
taken when the server closes the response (so the duration covers the whole body).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from icc_agent.agent import Agent
from icc_agent.recording import Recording

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _marked(environ: Environ) -> str | None:
    route = environ.get("icc.route")
    return route if isinstance(route, str) and route else None


class _Body:
    """The application's response iterable, hashed as the server iterates it; ``close`` takes the sample."""

    def __init__(self, inner: Iterable[bytes], recording: Recording, agent: Agent, environ: Environ) -> None:
        self.inner = inner
        self.recording = recording
        self.agent = agent
        self.environ = environ
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.inner:
                try:
                    self.recording.body(chunk)
                except Exception:
                    self.agent.broken()
                yield chunk
        except BaseException:
            self.recording.status = self.recording.status or 500
            raise

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            if not self.done:
                self.done = True
                self.agent.finish(self.recording, _marked(self.environ), self.environ)


class WSGIMiddleware:
    """``application = WSGIMiddleware(application)``: settings as keyword arguments or ``ICC_*`` variables (see
    icc_agent.config); pass ``agent=`` to share one agent."""

    def __init__(self, app: WSGIApp, agent: Agent | None = None, **settings: Any) -> None:
        self.app = app
        self.agent = agent if agent is not None else Agent(**settings)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not self.agent.admit():
            return self.app(environ, start_response)
        method = str(environ.get("REQUEST_METHOD") or "GET")
        recording = self.agent.start(method, authorization=bool(environ.get("HTTP_AUTHORIZATION")))
        if recording is None:
            return self.app(environ, start_response)
        agent = self.agent

        def observed(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
            try:
                recording.response(int(status.split(" ", 1)[0]), headers)
            except Exception:
                agent.broken()
            write = start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            def written(data: bytes) -> object:
                try:
                    recording.body(data)
                except Exception:
                    agent.broken()
                return write(data)

            return written

        try:
            inner = self.app(environ, observed)
        except BaseException:
            recording.status = recording.status or 500
            agent.finish(recording, _marked(environ), environ)
            raise
        return _Body(inner, recording, agent, environ)
