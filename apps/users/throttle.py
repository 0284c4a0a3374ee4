"""Login throttling: after 5 failures in 5 minutes, per account and per client address, wait.

Rule: the 5th failure within the window locks that account name (and, separately, that address) for
30 seconds; every further failure doubles the wait, up to 15 minutes. A success clears the account's
count. The state lives in the cache (Redis in production), so every web process shares it.
"""

from __future__ import annotations

import time

from django.core.cache import cache

WINDOW_S = 300
MAX_FAILURES = 5
BASE_DELAY_S = 30
MAX_DELAY_S = 900


def _keys(username: str, ip: str) -> list[str]:
    keys = [f"icc:login-fail:user:{username.strip().lower()[:150]}"]
    if ip:
        keys.append(f"icc:login-fail:ip:{ip}")
    return keys


def _recent(key: str, now: float) -> list[float]:
    return [t for t in (cache.get(key) or []) if now - t < WINDOW_S]


def retry_after(username: str, ip: str) -> int:
    """Seconds to wait before another attempt is accepted (0: go ahead)."""
    now = time.time()
    wait = 0.0
    for key in _keys(username, ip):
        failures = _recent(key, now)
        if len(failures) >= MAX_FAILURES:
            delay = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (len(failures) - MAX_FAILURES))
            wait = max(wait, failures[-1] + delay - now)
    return int(wait + 0.999) if wait > 0 else 0


def record_failure(username: str, ip: str) -> None:
    now = time.time()
    for key in _keys(username, ip):
        cache.set(key, [*_recent(key, now), now][-50:], timeout=WINDOW_S + MAX_DELAY_S)


def record_success(username: str) -> None:
    cache.delete(_keys(username, "")[0])
