"""Is a long-lived connection's session still good? Websockets outlive the HTTP request that opened them.

A websocket authenticated with a session cookie once, when it connected. Its session can end later: logout
(deleted from the store), expiry (idle timeout), a password change elsewhere (the session's auth hash no
longer matches, as :func:`django.contrib.auth.get_user` checks on every HTTP request), deactivation. The
consumers ask :func:`session_user` periodically and close the connection once it answers None.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model, load_backend
from django.utils.crypto import constant_time_compare


def session_user(scope: Mapping[str, Any]) -> Any | None:
    """The connection's user, freshly read, while its session still signs that (active) user in; else None.

    Like ``get_user`` but read-only: a session verified only by a ``SECRET_KEY_FALLBACKS`` key is accepted
    without rotating its key (a websocket cannot hand the browser a new cookie)."""
    user = scope.get("user")
    session_key = getattr(scope.get("session"), "session_key", None)
    if user is None or not getattr(user, "is_authenticated", False) or not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    data = store.load()  # {} once deleted (logout) or expired
    user_id, backend_path = data.get(SESSION_KEY), data.get(BACKEND_SESSION_KEY)
    if user_id is None or str(user_id) != str(user.pk) or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    fresh = load_backend(backend_path).get_user(get_user_model()._meta.pk.to_python(user_id))
    if fresh is None or not fresh.is_active:
        return None
    session_hash = str(data.get(HASH_SESSION_KEY) or "")
    if not session_hash:
        return None
    hashes = [fresh.get_session_auth_hash()]
    hashes += [
        fresh._get_session_auth_hash(secret=secret)  # type: ignore[attr-defined]  # Django's, as get_user uses it
        for secret in settings.SECRET_KEY_FALLBACKS
    ]
    if not any(constant_time_compare(session_hash, expected) for expected in hashes):
        return None  # the password changed since this session logged in
    return fresh
