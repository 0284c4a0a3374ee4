"""API authorization on top of :func:`apps.core.access.restrict` (which decides visibility: 404)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from apps.core.access import Action, Scope, can, can_at

READ_ACTIONS = frozenset({"list", "retrieve", "metadata", None})
OWN = "own"  # an action any signed-in user may take on what they can see (their own tokens, say)


class ScopedActionPermission(BasePermission):
    """Rule: reading needs the read right (rows outside the reader's scopes are simply not found);
    any other action needs the action the viewset names for it (``configure`` by default), on the
    object at hand, or at the scope a new object is created in."""

    message = "Your role does not allow this action here."

    def has_permission(self, request: Any, view: Any) -> bool:
        if view.required_action() == OWN:
            return True
        if view.action == "create":
            return can_at(request.user, view.required_action(), view.create_scope(request))
        return True

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        action = view.required_action()
        return action in (Action.READ, OWN) or can(request.user, action, obj)


class ActionMixin:
    """What each viewset action requires; override ``action_rights`` or ``create_scope`` per viewset."""

    action_rights: dict[str, str] = {}

    def required_action(self) -> str:
        name = getattr(self, "action", None)
        if name in READ_ACTIONS:
            return Action.READ
        return self.action_rights.get(name or "", Action.CONFIGURE)

    def create_scope(self, request: Any) -> Scope:
        return Scope()
