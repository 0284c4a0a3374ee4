"""``{% recommendation_rights application as rights %}``: what the viewer may do with the application's caching
recommendations (``rights.decide``: accept or reject, configure rights; ``rights.compute``: recompute, operator
role), so the Traffic tab offers only the buttons that will work."""

from __future__ import annotations

from typing import Any

from django import template

from apps.core.access import Action, can
from apps.traffic.recommend_selectors import can_decide

register = template.Library()


@register.simple_tag(takes_context=True)
def recommendation_rights(context: Any, application: Any) -> dict[str, bool]:
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"decide": can_decide(user, application), "compute": can(user, Action.ACT, application)}


@register.filter
def percent(share: Any) -> str:
    """``0.9889`` → ``98.9 %``."""
    try:
        return f"{float(share) * 100:.1f} %"
    except (TypeError, ValueError):
        return ""
