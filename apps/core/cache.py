"""Django's native Redis cache with django-prometheus' hit/miss counters, that rides out a Redis outage.

django-prometheus ships the same class (``NativeRedisCache``) in a module that also imports
django-redis, which ICC does not otherwise need; this keeps the metric names identical.

While Redis is unreachable, reads are misses and plain writes are skipped (logged, counted), so pages keep
rendering (sessions fall back to the database, ``cached_db``) and the banner can say Redis is down. ``add``,
``incr``, ``decr`` and ``touch`` still raise: they carry throttles and once-only markers, which must fail closed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache
from django_prometheus.cache.metrics import (
    django_cache_get_fail_total,
    django_cache_get_total,
    django_cache_hits_total,
    django_cache_misses_total,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
OUTAGE = (RedisConnectionError, RedisTimeoutError)
_warned_at = [0.0]


def _outage(operation: str, exc: Exception) -> None:
    """Log an unreachable Redis at most every 10 s per process (each request would otherwise log several)."""
    now = time.monotonic()
    if now - _warned_at[0] >= 10:
        _warned_at[0] = now
        logger.warning("cache %s skipped: Redis unreachable (%s)", operation, type(exc).__name__)


class MetricsRedisCache(RedisCache):
    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        django_cache_get_total.labels(backend="native_redis").inc()
        try:
            result = super().get(key, default=None, version=version)
        except OUTAGE as exc:
            django_cache_get_fail_total.labels(backend="native_redis").inc()
            _outage("get", exc)
            return default
        except Exception:
            django_cache_get_fail_total.labels(backend="native_redis").inc()
            raise
        if result is not None:
            django_cache_hits_total.labels(backend="native_redis").inc()
            return result
        django_cache_misses_total.labels(backend="native_redis").inc()
        return default

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        try:
            return dict(super().get_many(keys, version=version))
        except OUTAGE as exc:
            _outage("get_many", exc)
            return {}

    def set(self, key: Any, value: Any, timeout: Any = 300, version: int | None = None) -> None:
        try:
            super().set(key, value, timeout=timeout, version=version)
        except OUTAGE as exc:
            _outage("set", exc)

    def set_many(self, data: dict[Any, Any], timeout: Any = 300, version: int | None = None) -> list[Any]:
        try:
            return list(super().set_many(data, timeout=timeout, version=version))
        except OUTAGE as exc:
            _outage("set_many", exc)
            return list(data)

    def delete(self, key: Any, version: int | None = None) -> bool:
        try:
            return bool(super().delete(key, version=version))
        except OUTAGE as exc:
            _outage("delete", exc)
            return False

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        try:
            super().delete_many(keys, version=version)
        except OUTAGE as exc:
            _outage("delete_many", exc)
