"""Reads on users, restricted to what the viewer may see (staff only until access control lands)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.users.models import User


def user_list(*, viewer: User) -> QuerySet[User]:
    if viewer.is_staff or viewer.is_superuser:
        return User.objects.all()
    return User.objects.filter(pk=viewer.pk)
