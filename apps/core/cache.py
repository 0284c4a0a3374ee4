"""Django's native Redis cache with django-prometheus' hit/miss counters.

django-prometheus ships the same class (``NativeRedisCache``) in a module that also imports
django-redis, which ICC does not otherwise need; this keeps the metric names identical.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache
from django_prometheus.cache.metrics import (
    django_cache_get_fail_total,
    django_cache_get_total,
    django_cache_hits_total,
    django_cache_misses_total,
)


class MetricsRedisCache(RedisCache):
    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        django_cache_get_total.labels(backend="native_redis").inc()
        try:
            result = super().get(key, default=None, version=version)
        except Exception:
            django_cache_get_fail_total.labels(backend="native_redis").inc()
            raise
        if result is not None:
            django_cache_hits_total.labels(backend="native_redis").inc()
            return result
        django_cache_misses_total.labels(backend="native_redis").inc()
        return default
