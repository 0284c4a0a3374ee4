"""Live topics of the scaling pages.

* ``scaling`` (the fleet): any logged-in user may follow; the push is a trigger that makes the page re-fetch
  its table with its own filters (what each viewer sees is restricted when the table is read).
* ``scaling.<application id>`` (one application's scaling page): whoever may read the application; each push
  re-renders the summary (current vs desired replicas, status, kill switch) out of band and re-fetches the
  decisions timeline at the page the viewer is on.

Publishing: :func:`apps.scaler.events.scaling_changed` after commit. Decisions and policy rows published on save (the
``post_save`` receivers below), so every writer — evaluation, services, admin — keeps the pages live; writes
made with ``QuerySet.update()`` (the kill switch) are published by their caller.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.template.loader import render_to_string
from django.urls import reverse

from apps.core import topics
from apps.core.access import Action, restrict
from apps.scaler.events import FLEET, scaling_changed
from apps.scaler.selectors import pause_context, summary_context


def _application_id(name: str) -> int | None:
    _, _, raw = name.partition(".")
    return int(raw) if raw.isdigit() else None


def authorize(user: Any, name: str) -> bool:
    """Rule: the fleet, any logged-in user (rows are restricted when read); an application's scaling page,
    whoever may read that application."""
    if name == FLEET:
        return topics.authenticated(user, name)
    from apps.clusters.models import Application

    pk = _application_id(name)
    if pk is None:
        return False
    return restrict(user, Action.READ, Application.objects.filter(pk=pk)).exists()


def _refresh(target: str, url: str, include: str) -> str:
    return render_to_string("core/_refresh.html", {"target": target, "url": url, "include": include})


def render(user: Any, name: str, payload: dict[str, Any]) -> str:
    if name == FLEET:
        parts = [_refresh("scaling-fleet", reverse("scaler:fleet-table"), "#scaling-filters, #scaling-fleet-page")]

        parts.append(pause_banner_html(user, oob=True))
        return "".join(parts)
    from apps.scaler import selectors

    pk = _application_id(name)
    app = selectors.application(user, pk or 0)
    if app is None:
        return ""
    summary = render_to_string("scaler/_summary.html", {**summary_context(user, app), "oob": True})
    url = reverse("scaler:decisions", args=[app.pk])
    return summary + _refresh("scaling-decisions", url, "#scaling-decisions-page")


def _on_decision(sender: Any, instance: Any, **_: Any) -> None:
    scaling_changed(instance.application_id, "decision")


def _on_policy(sender: Any, instance: Any, **_: Any) -> None:
    scaling_changed(instance.application_id, "policy")


def _on_settings(sender: Any, instance: Any, **_: Any) -> None:
    scaling_changed(None, "pause")


def register() -> None:
    from apps.scaler.models import Decision, ScalerSettings, ScalingPolicy

    topics.register(FLEET, authorize=authorize, render=render)
    post_save.connect(_on_decision, sender=Decision, dispatch_uid="scaler.topics.decision")
    post_save.connect(_on_policy, sender=ScalingPolicy, dispatch_uid="scaler.topics.policy")
    post_save.connect(_on_settings, sender=ScalerSettings, dispatch_uid="scaler.topics.settings")


register()


def pause_banner_html(user: Any, *, oob: bool = False) -> str:
    return render_to_string("scaler/_pause_banner.html", {**pause_context(user), "oob": oob, "pause_form": None})
