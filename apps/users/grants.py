"""Effective grants: a user's own bindings plus their teams', minus expired ones."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from apps.core.access import Grant, Scope


def user_grants(user: Any) -> list[Grant]:
    """Rule: a binding counts while it has not expired, whether it names the user or one of their teams."""
    from apps.users.models import RoleBinding

    now = timezone.now()
    rows = (
        RoleBinding.objects.filter(Q(user=user) | Q(team__members=user))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("role", "scope_kind", "scope_cluster", "scope_namespace", "scope_application")
        .distinct()
    )
    return [
        (role, Scope(kind, cluster, namespace, application)) for role, kind, cluster, namespace, application in rows
    ]
