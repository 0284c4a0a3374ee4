"""Registry of live topics: who may subscribe, and which HTML fragment a subscriber receives.

Each topic has an ``authorize(user, name)`` rule and a ``render(user, name, payload)`` function that
returns server-rendered HTML carrying ``hx-swap-oob`` targets. Apps register their topics in
``AppConfig.ready`` (the dashboard's are below). Access control (a later issue) replaces the
rules here with scoped checks; the registry's interface stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.template.loader import render_to_string

from apps.core.events import DASHBOARD

AnyUser = AbstractBaseUser | AnonymousUser
Authorize = Callable[[AnyUser, str], bool]
Render = Callable[[AnyUser, str, dict[str, Any]], str]


@dataclass(frozen=True)
class Topic:
    prefix: str
    authorize: Authorize
    render: Render


_registry: dict[str, Topic] = {}


def register(prefix: str, *, authorize: Authorize, render: Render) -> None:
    """Register a topic. ``prefix`` matches the topic name or its leading dotted parts (``clusters.cluster``
    matches ``clusters.cluster.7``); the longest registered prefix wins."""
    _registry[prefix] = Topic(prefix, authorize, render)


def lookup(name: str) -> Topic | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        found = _registry.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


def authenticated(user: AnyUser, name: str) -> bool:
    """Rule: any logged-in, active user may subscribe."""
    return bool(user.is_authenticated and user.is_active)


def numbered(name: str, prefix: str) -> int | None:
    """The id of a ``<prefix>.<id>`` topic (None for any other name)."""
    raw = name.removeprefix(f"{prefix}.") if name.startswith(f"{prefix}.") else ""
    return int(raw) if raw.isdigit() else None


def page_or_object(user: AnyUser, name: str, *, page: str, prefix: str, readable: Callable[[int], bool]) -> bool:
    """Rule: a page's topic, any logged-in user (rows are restricted when read); one object's (``<prefix>.<id>``),
    whoever may read that object."""
    if not authenticated(user, name):
        return False
    if name == page:
        return True
    pk = numbered(name, prefix)
    return pk is not None and readable(pk)


def _render_dashboard(user: AnyUser, name: str, payload: dict[str, Any]) -> str:
    from apps.core.selectors import dashboard_attention, dashboard_counters

    attention = {"attention": dashboard_attention(user), "oob": True}
    counters = {"counters": dashboard_counters(user), "oob": True}
    return render_to_string("core/_dashboard_attention.html", attention) + render_to_string(
        "core/_dashboard_counters.html", counters
    )


register(DASHBOARD, authorize=authenticated, render=_render_dashboard)
