"""Idle session timeout without a session write on every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest

RENEW_AFTER_S = 300
SEEN_KEY = "_icc_seen"


class SessionIdleMiddleware:
    """Rule: a session expires SESSION_IDLE_TIMEOUT after its last use; use renews it at most every 5 minutes
    (so an idle session ends between timeout-5min and timeout after the last request)."""

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
        response = self.get_response(request)
        self.renew(request)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        response = await self.get_response(request)
        self.renew(request)
        return response

    @staticmethod
    def renew(request: HttpRequest) -> None:
        session = getattr(request, "session", None)
        if session is None or not session.accessed or session.is_empty():
            return
        now = int(time.time())
        if now - int(session.get(SEEN_KEY, 0)) >= RENEW_AFTER_S:
            session[SEEN_KEY] = now  # marks the session modified: saved with a fresh expiry
