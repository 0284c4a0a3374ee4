"""Reads for the portal shell, and the filtering every app's list selectors share."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Model, Q, QuerySet

from apps.core.access import Action, restrict

M = TypeVar("M", bound=Model)
logger = logging.getLogger(__name__)


def contains_any(fields: Sequence[str], text: str) -> Q:
    """Rows holding ``text`` (in any case) in one of ``fields``."""
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": text})
    return condition


def matching(
    queryset: QuerySet[M], *, search: str = "", search_fields: Sequence[str] = (), **equal: Any
) -> QuerySet[M]:
    """The rows equal to each filter given a value (an empty one means any) and, when ``search`` is given, holding
    it in one of ``search_fields``: what a list page's filter form asks for."""
    queryset = queryset.filter(**{name: value for name, value in equal.items() if value})
    if search:
        queryset = queryset.filter(contains_any(search_fields, search))
    return queryset


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


# --- "Needs attention": what the dashboard leads with --------------------------------------------------------------

ATTENTION_SHOWN = 5  # the most recent few items a section lists (its counts say how many there are in all)


@dataclass(frozen=True)
class AttentionItem:
    """One thing to look at: what it is, where to look, a few words more, and a state (a badge: critical, error,
    warning, info)."""

    label: str
    url: str = ""
    detail: str = ""
    state: str = "warning"


@dataclass(frozen=True)
class AttentionCount:
    label: str
    value: int
    state: str = "warning"
    url: str = ""


@dataclass(frozen=True)
class AttentionSection:
    """One app's part of "Needs attention": counts (of everything the viewer may read) and the first few items."""

    key: str
    title: str
    url: str = ""
    counts: tuple[AttentionCount, ...] = ()
    items: tuple[AttentionItem, ...] = ()
    total: int = 0  # 0: nothing here needs attention (the section says so in one line)
    calm: str = "Nothing here."


AttentionProvider = Callable[[Any], AttentionSection | None]
_attention_providers: dict[AttentionProvider, int] = {}


def register_attention(provider: AttentionProvider, *, order: int = 50) -> None:
    """Apps add a section to the dashboard's "Needs attention" (``provider(viewer)``, reading only what the viewer
    may read, in a bounded number of queries) without the core importing them; lower ``order`` comes first."""
    _attention_providers[provider] = order


def dashboard_attention(viewer: Any) -> list[AttentionSection]:
    """The "Needs attention" sections for this viewer. A provider that fails is logged and left out: the rest of
    the dashboard still shows."""
    sections: list[AttentionSection] = []
    for provider, _ in sorted(_attention_providers.items(), key=lambda item: item[1]):
        try:
            section = provider(viewer)
        except Exception:
            logger.exception("dashboard attention provider %s failed", getattr(provider, "__qualname__", provider))
            continue
        if section is not None:
            sections.append(section)
    return sections
