"""The deployment files (Dockerfile, Kubernetes manifests) are checked by reading them: these tests need neither
PostgreSQL, Redis nor pytest-django (they run with ``-p no:django`` too).

tests/conftest.py gives every test autouse fixtures that need those services; this folder replaces them (same
names) with no-ops. A new autouse fixture in tests/conftest.py needs a no-op here too.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _real_services() -> None:
    return None


@pytest.fixture(autouse=True)
def _plain_static_storage() -> None:
    return None


@pytest.fixture(autouse=True)
def _clean_redis_db() -> None:
    return None
