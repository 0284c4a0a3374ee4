"""The suite's fixtures: the autouse ones here, everything else from the plugins in tests/support/.

A test that needs a real component (PostgreSQL, Redis, Chromium, kube-apiserver, Prometheus, the OpenID Connect
provider) and cannot reach it fails when CI=true, and is skipped with the reason printed on a developer's
machine (``tests.support.components.require``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.support.components import require, tcp_reachable

pytest_plugins = [
    "tests.support.personas",
    "tests.support.server",
    "tests.support.browser",
    "tests.support.kube",
    "tests.support.clusters",
    "tests.support.prometheus",
    "tests.support.oidc",
    "tests.support.otlp",
]


@pytest.fixture(scope="session", autouse=True)
def _real_services() -> None:
    """The suite runs on PostgreSQL and Redis, never silently on SQLite."""
    require(settings.ICC_DATABASE_VENDOR == "postgresql", "DATABASE_URL must point to PostgreSQL for the tests")
    db = settings.DATABASES["default"]
    db_url = f"pg://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    require(tcp_reachable(db_url, 5432), f"PostgreSQL is unreachable at {db_url}")
    require(bool(settings.REDIS_URL) and tcp_reachable(settings.REDIS_URL, 6379), "Redis (REDIS_URL) is unreachable")


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):  # type: ignore[no-untyped-def]
    """In-process tests render templates without a collectstatic manifest (servers we start collect one)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _clean_redis_db() -> Iterator[None]:
    """Each test starts with an empty Redis test database (cache, channel layer, broker)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.close()


@pytest.fixture(autouse=True)
def _fresh_request_context() -> None:
    """Each test starts outside any request: the request context (user, request id) is kept after a
    response on purpose (for logging), so a test calling services directly after another test's request
    would otherwise act as that request's user."""
    from apps.core import context

    context.start()
