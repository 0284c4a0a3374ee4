"""Live topics of the audit trail: the tail of new events, and each object's history panel."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from apps.audit.events import HISTORY, TAIL, history_target
from apps.core import topics
from apps.core.access import Action, is_platform_superuser, restrict, scopes_for


def _staff(user: Any, name: str) -> bool:
    """Rule: whoever may read somewhere may follow the trail; each push shows only events they may read."""
    return is_platform_superuser(user) or bool(scopes_for(user, Action.READ))


def _render_tail(user: Any, name: str, payload: dict[str, Any]) -> str:
    from apps.audit.selectors import audit_events

    seqs = payload.get("seqs") or []
    if not seqs:
        return '<div id="audit-live-status" hx-swap-oob="true" class="icc-live">live</div>'
    events = list(audit_events(viewer=user).filter(seq__in=seqs).order_by("seq"))
    return render_to_string("audit/_live_rows.html", {"events": events})


def _render_history(user: Any, name: str, payload: dict[str, Any]) -> str:
    from apps.audit.selectors import object_history

    target_type, target_id = history_target(name)
    events = object_history(viewer=user, target_type=target_type, target_id=target_id)
    return render_to_string(
        "audit/_history.html",
        {
            "events": events,
            "panel_id": name.replace(".", "-"),
            "oob": True,
            "target_type": target_type,
            "target_id": target_id,
        },
    )


def _may_read_target(user: Any, name: str) -> bool:
    """Rule: an object's history may be followed by whoever may read that object."""
    from django.apps import apps

    try:
        target_type, target_id = history_target(name)
        model = apps.get_model(target_type)
    except (ValueError, LookupError):
        return False
    return restrict(user, Action.READ, model._default_manager.filter(pk=target_id)).exists()


topics.register(TAIL, authorize=_staff, render=_render_tail)
topics.register(HISTORY, authorize=_may_read_target, render=_render_history)
