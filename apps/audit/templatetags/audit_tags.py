from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Model

from apps.audit.events import history as history_topic
from apps.audit.selectors import object_history
from apps.audit.services import target_of

register = template.Library()


@register.inclusion_tag("audit/_history.html", takes_context=True)
def audit_history(context: dict[str, Any], obj: Model, limit: int = 20) -> dict[str, Any]:
    """``{% audit_history object %}``: the object's latest events, kept live over the websocket."""
    target_type, target_id, _ = target_of(obj)
    user = context["request"].user
    topic = history_topic(target_type, target_id) or ""
    return {
        "events": object_history(viewer=user, target_type=target_type, target_id=target_id, limit=limit),
        "panel_id": topic.replace(".", "-"),
        "topic": topic,
        "target_type": target_type,
        "target_id": target_id,
    }
