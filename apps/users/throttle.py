"""Login throttling: after 5 failures, per account and per client address, wait.

Rule: the 5th failure within the window locks that account name (and, separately, that address) for
30 seconds; every further failure doubles the wait, up to 15 minutes. A success clears the account's
count; the address count covers an IPv6 client's whole /64. Account names are compared the way Django
normalizes them (NFKC) and case-folded, so ``admin``, ``Admin`` and ``admin`` spelled with fullwidth
letters share one count. The state lives in the cache (Redis in production), so every web process
shares it.

Counting is atomic: an attempt reserves its place in the count (``INCR``) *before* the password is
checked, so parallel attempts cannot all read "4 failures" and all go ahead. Past the limit, one attempt
per expired lock is let through, claimed with an atomic add.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import time
from dataclasses import dataclass, field

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

WINDOW_S = 300
MAX_FAILURES = 5
BASE_DELAY_S = 30
MAX_DELAY_S = 900
PENDING_WAIT_S = 5  # what to tell an attempt refused because the last allowed ones are still being checked


def normalize_username(username: str) -> str:
    """The account name as the throttle counts it: Django's NFKC normalization, trimmed, case-folded."""
    return str(AbstractBaseUser.normalize_username(str(username))).strip().casefold()[:150]


def address_key(ip: str) -> str:
    """What the per-address count keys on: the address, or for IPv6 its /64 (one host usually has all of it)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


_ACCOUNT_PREFIX = "icc:login-fail:user:"


def _keys(username: str, ip: str) -> list[str]:
    digest = hashlib.sha256(normalize_username(username).encode()).hexdigest()[:32]
    keys = [f"{_ACCOUNT_PREFIX}{digest}"]
    if ip:
        keys.append(f"icc:login-fail:ip:{address_key(ip)}")
    return keys


def _lock_key(key: str) -> str:
    return f"{key}:until"


def _delay(failures: int) -> int:
    return int(min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(0, failures - MAX_FAILURES)))


def _incr(key: str) -> int:
    """Atomically add one to ``key``, creating it (with the window as its lifetime) when absent."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        real = backend.make_and_validate_key(key)
        client = backend._cache.get_client(real, write=True)
        with client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: create-with-TTL and INCR as one step
            pipe.set(real, 0, ex=WINDOW_S, nx=True)
            pipe.incr(real)
            return int(pipe.execute()[1])
    cache.add(key, 0, WINDOW_S)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between the two calls
        cache.add(key, 1, WINDOW_S)
        return 1


def _decr(key: str) -> None:
    with contextlib.suppress(ValueError):  # already expired: nothing to give back
        cache.decr(key)


def _wait(keys: list[str], now: float) -> float:
    wait = 0.0
    for key in keys:
        until = cache.get(_lock_key(key))
        if until is not None:
            wait = max(wait, float(until) - now)
    return wait


def _seconds(wait: float) -> int:
    return int(wait + 0.999) if wait > 0 else 0


@dataclass
class Attempt:
    """A login attempt that may be evaluated: its places in the counts, to settle afterwards."""

    username: str
    ip: str
    wait: int = 0  # > 0: refused, try again in this many seconds
    keys: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)  # retries after a lock, held by this attempt

    @property
    def allowed(self) -> bool:
        return self.wait == 0


def attempt_begin(username: str, ip: str) -> Attempt:
    """Reserve an attempt for (account, address); ``allowed`` is False while either is throttled.

    Every allowed attempt must be settled with :func:`attempt_failed` or :func:`attempt_succeeded`."""
    now = time.time()
    keys = _keys(username, ip)
    wait = _wait(keys, now)
    if wait > 0:
        return Attempt(username, ip, wait=_seconds(wait))
    attempt = Attempt(username, ip)
    for key in keys:
        attempt.keys.append(key)
        if _incr(key) <= MAX_FAILURES:
            continue
        claim = _claim_retry(key, now)
        if claim is None:
            _give_back(attempt)
            return Attempt(username, ip, wait=_seconds(_wait(keys, now)) or PENDING_WAIT_S)
        attempt.claims.append(claim)
    return attempt


def _claim_retry(key: str, now: float) -> str | None:
    """Past the limit: the first attempt after the lock ran out goes ahead (the claim's key; None: wait)."""
    until = cache.get(_lock_key(key))
    if until is None or float(until) > now:  # the allowed attempts are still being checked, or still locked
        return None
    claim = f"{key}:retry:{float(until):.3f}"
    return claim if cache.add(claim, 1, MAX_DELAY_S + WINDOW_S) else None


def _give_back(attempt: Attempt) -> None:
    for key in attempt.keys:
        _decr(key)
    if attempt.claims:
        cache.delete_many(attempt.claims)


def attempt_failed(attempt: Attempt) -> None:
    """The attempt's password was wrong: it stays counted; at the limit, lock (longer with each failure)."""
    now = time.time()
    for key in attempt.keys:
        count = int(cache.get(key) or 0)
        if count >= MAX_FAILURES:
            delay = _delay(count)
            cache.set(_lock_key(key), now + delay, delay + WINDOW_S)
            cache.touch(key, delay + WINDOW_S)  # the count outlives the lock, so the next failure doubles it
            _announce_lock(attempt, key, count, delay)


def _announce_lock(attempt: Attempt, key: str, count: int, delay: int) -> None:
    """The first lock of a streak is announced (``users.login_throttled``); the longer locks of further failures
    are the same condition. The marker (an atomic add) lives as long as the count, so parallel failures announce
    once."""
    from apps.users import notify

    if not cache.add(f"{key}:announced", 1, delay + WINDOW_S):
        return
    account = key.startswith(_ACCOUNT_PREFIX)
    notify.login_throttled(
        what="account" if account else "address",
        key=key.split(":", 3)[3],
        who=repr(normalize_username(attempt.username)[:64]) if account else address_key(attempt.ip),
        wait=delay,
        failures=count,
    )


def attempt_succeeded(attempt: Attempt) -> None:
    """The attempt logged in: the account starts afresh; the address gives back its reserved place."""
    record_success(attempt.username)
    _give_back(Attempt(attempt.username, attempt.ip, keys=attempt.keys[1:], claims=attempt.claims))


def retry_after(username: str, ip: str) -> int:
    """Seconds to wait before another attempt is accepted (0: go ahead)."""
    return _seconds(_wait(_keys(username, ip), time.time()))


def record_failure(username: str, ip: str) -> None:
    """Count one failure that no :func:`attempt_begin` reserved (e.g. another way of logging in)."""
    keys = _keys(username, ip)
    for key in keys:
        _incr(key)
    attempt_failed(Attempt(username, ip, keys=keys))


def record_success(username: str) -> None:
    key = _keys(username, "")[0]
    cache.delete_many([key, _lock_key(key)])
    if cache.delete(f"{key}:announced"):  # the account was announced throttled: that condition ends
        from apps.users import notify

        notify.login_unthrottled(key=key.split(":", 3)[3], who=repr(normalize_username(username)[:64]))
