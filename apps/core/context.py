"""Per-request (and per-task) context carried through a contextvar: request id, actor, client."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    user_id: int | None = None
    username: str = ""
    client_ip: str = ""
    user_agent: str = ""
    source: str = ""  # api / portal / admin / task / watcher / cli
    task: str = ""
    user: Any = None  # the request's (lazy) user, set after authentication; None outside requests
    extra: dict[str, str] = field(default_factory=dict)


_current: ContextVar[RequestContext] = ContextVar("icc_request_context", default=RequestContext())  # noqa: B039


def current() -> RequestContext:
    return _current.get()


def bind(**changes: object) -> object:
    """Replace fields of the current context; returns a token for :func:`reset`."""
    return _current.set(replace(_current.get(), **changes))  # type: ignore[arg-type]


def start(**fields: object) -> None:
    """Begin a new context (a request, a task run): every field not given is cleared.

    Not reset at the end on purpose: Django logs the response after the middleware returns, and
    that line must carry the request id too. The next request or task starts its own context.
    """
    _current.set(RequestContext(**fields))  # type: ignore[arg-type]


def reset(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(incoming: str | None) -> str:
    """Use the caller's X-Request-ID when it is short and safe, else make a new one."""
    if incoming and _SAFE_REQUEST_ID.match(incoming):
        return incoming
    return new_request_id()
