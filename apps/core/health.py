"""Liveness (/healthz) and readiness (/readyz) probes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 2.0


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is alive and serving requests; touches nothing else."""
    return HttpResponse("ok", content_type="text/plain")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _ping_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        client.ping()
    finally:
        client.close()


def _check_channel_layer() -> None:
    if settings.REDIS_URL:
        _ping_redis(settings.REDIS_URL)


def _check_broker() -> None:
    broker = settings.CELERY_BROKER_URL
    if broker.startswith(("redis://", "rediss://")):
        _ping_redis(broker)
        return
    if settings.ICC_TASKS_EMBEDDED:
        from apps.core import embedded

        if embedded.running() and not embedded.healthy():
            raise RuntimeError("the embedded worker or scheduler thread has stopped")
        return
    from celery import current_app as app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=int(PROBE_TIMEOUT_S))


def _run(check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as exc:  # the body names the failing part only (it is public); details go to the log
        logger.warning("readiness check %s failed: %s: %s", check.__name__, type(exc).__name__, exc)
        return "fail"
    return "ok"


def dependency_checks() -> dict[str, str]:
    """``{"database": "ok"|"fail", "redis": ..., "broker": ...}``: each dependency asked now (a few ms each; a
    dependency that is down answers "fail" within PROBE_TIMEOUT_S). Every process reconnects by itself once it
    is back (Django opens a new database connection, redis-py and kombu reconnect), so this turns "ok" again."""
    return {
        "database": _run(_check_database),
        "redis": _run(_check_channel_layer) if settings.REDIS_URL else "ok (not configured: in-memory)",
        "broker": _run(_check_broker),
    }


_recent: dict[str, tuple[float, list[str]]] = {}
BANNER_CACHE_S = 3.0


def failing_dependencies() -> list[str]:
    """The dependencies down now, remembered for a few seconds per process (the portal's banner asks on every
    page; a probe per page view would be wasteful while everything is fine and slow while something is down)."""
    found = _recent.get("failing")
    if found is not None and time.monotonic() - found[0] < BANNER_CACHE_S:
        return found[1]
    failing = [name for name, result in dependency_checks().items() if result.startswith("fail")]
    _recent["failing"] = (time.monotonic(), failing)
    return failing


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database, the Redis channel layer/cache and the task broker all answer."""
    started = time.perf_counter()
    checks = dependency_checks()
    failing = [name for name, result in checks.items() if result.startswith("fail")]
    body = {
        "status": "fail" if failing else "ok",
        "failing": failing,
        "checks": checks,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return JsonResponse(body, status=503 if failing else 200)
