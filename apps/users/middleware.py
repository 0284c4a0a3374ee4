"""Idle session timeout without a session write on every request."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse

from apps.core.middleware import HybridMiddleware

RENEW_AFTER_S = 300
SEEN_KEY = "_icc_seen"


class SessionIdleMiddleware(HybridMiddleware):
    """Rule: a session expires SESSION_IDLE_TIMEOUT after its last use; use renews it at most every 5 minutes
    (so an idle session ends between timeout-5min and timeout after the last request)."""

    def after(self, request: HttpRequest, response: HttpResponse) -> None:
        session = getattr(request, "session", None)
        if session is None or not session.accessed or session.is_empty():
            return
        now = int(time.time())
        if now - int(session.get(SEEN_KEY, 0)) >= RENEW_AFTER_S:
            session[SEEN_KEY] = now  # marks the session modified: saved with a fresh expiry
