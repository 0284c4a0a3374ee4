"""Reads for the portal shell."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache

from apps.core.access import Action, restrict


def heartbeat_age_seconds() -> float | None:
    from apps.core.tasks import HEARTBEAT_KEY

    beat = cache.get(HEARTBEAT_KEY)
    if not beat:
        return None
    return max(0.0, time.time() - float(beat["worker_at"]))


CounterProvider = Callable[[Any], list[dict[str, Any]]]
_counter_providers: list[CounterProvider] = []


def register_counters(provider: CounterProvider) -> None:
    """Apps add dashboard counters (``[{"key", "label", "value", "url"?}]`` for a viewer, counted through
    ``restrict()``) without the core importing them."""
    if provider not in _counter_providers:
        _counter_providers.append(provider)


def dashboard_counters(viewer: Any) -> list[dict[str, Any]]:
    """The dashboard's counters, each counting only what the viewer may see."""
    age = heartbeat_age_seconds()
    users = restrict(viewer, Action.READ, get_user_model().objects.filter(is_active=True))
    counters: list[dict[str, Any]] = [{"key": "users", "label": "Users", "value": users.count()}]
    for provider in _counter_providers:
        counters.extend(provider(viewer))
    return [
        *counters,
        {
            "key": "worker",
            "label": "Worker heartbeat",
            "value": "never" if age is None else f"{int(age)} s ago",
            "state": "ok" if age is not None and age < 120 else "warn",
        },
    ]
