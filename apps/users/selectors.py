"""Reads on users, restricted to what the viewer may see (staff only until access control lands)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.access import Action, restrict
from apps.users.models import User


def user_list(*, viewer: User) -> QuerySet[User]:
    """Users the viewer may read: everyone with a global read grant, else themself."""
    return restrict(viewer, Action.READ, User.objects.all())
