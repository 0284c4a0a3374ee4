"""Reads of caching recommendations and cache configurations, restricted to what the viewer may read.

Rule: a recommendation, and a configuration version, is read by whoever reads its application, and decided
(accepted or rejected) by whoever has configure rights on it. ``recommendations_for`` is what an application's
Traffic tab shows: the current rows (not superseded) with their reasons, evidence and replay estimate.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.clusters.models import Application
from apps.core.access import Action, can, restrict
from apps.traffic.models import CacheConfig, Recommendation, RecommendationState

STATE_ORDER = {RecommendationState.PROPOSED: 0, RecommendationState.ACCEPTED: 1, RecommendationState.REJECTED: 2}


def recommendations(viewer: Any, *, application: int | None = None, state: str = "") -> QuerySet[Recommendation]:
    """The recommendations the viewer may read, newest first, optionally of one application and in one state."""
    rows = restrict(viewer, Action.READ, Recommendation.objects.select_related("decided_by"))
    if application is not None:
        rows = rows.filter(application_id=application)
    if state:
        rows = rows.filter(state=state)
    return rows.order_by("-id")


def recommendations_for(viewer: Any, application: Application) -> list[Recommendation]:
    """The application's current recommendations (proposed, accepted, rejected; not superseded), by route and
    method, then proposals before decisions; empty when the viewer may not read the application. Each row carries
    ``reasons`` (sentences), ``evidence`` (the numbers) and ``estimate`` (the replay's hit ratio and savings)."""
    rows = list(recommendations(viewer, application=application.pk).exclude(state=RecommendationState.SUPERSEDED))
    rows.sort(key=lambda r: (r.route, r.method, STATE_ORDER.get(RecommendationState(r.state), 3), -r.pk))
    return rows


def can_decide(viewer: Any, application: Application) -> bool:
    """May the viewer accept or reject this application's recommendations (configure rights on it)?"""
    return can(viewer, Action.CONFIGURE, application)


def cache_configs(viewer: Any, *, application: int | None = None) -> QuerySet[CacheConfig]:
    """The configuration versions the viewer may read, newest first."""
    rows = restrict(viewer, Action.READ, CacheConfig.objects.select_related("created_by"))
    if application is not None:
        rows = rows.filter(application_id=application)
    return rows.order_by("-id")


def current_config(application_id: int) -> CacheConfig | None:
    """The application's latest configuration version (what its machine identity is served)."""
    return CacheConfig.objects.filter(application_id=application_id).order_by("-version").first()
