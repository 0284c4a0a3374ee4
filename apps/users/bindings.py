"""Role bindings: granted and removed by admins within their own scope, each change audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.access import Action, Role, Scope, ScopeKind, can_at
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.users.models import RoleBinding, Team, User

# Clusters (next issue) register a function telling whether a scope names something that exists.
_scope_resolver: Callable[[Scope], str | None] | None = None


def register_scope_resolver(resolver: Callable[[Scope], str | None]) -> None:
    """``resolver(scope)`` returns None when the scope exists, else a message naming what is missing."""
    global _scope_resolver  # noqa: PLW0603 - a registry set once at start-up
    _scope_resolver = resolver


def check_scope(scope: Scope) -> None:
    """Rule: a binding's scope must be complete and name something that exists."""
    if scope.kind not in ScopeKind.values:
        raise DomainError(
            f"unknown scope kind {scope.kind!r}; one of {', '.join(ScopeKind.values)}", field="scope_kind"
        )
    if scope.kind == ScopeKind.GLOBAL:
        if scope.cluster or scope.namespace or scope.application:
            raise DomainError("a global binding names no cluster, namespace or application", field="scope_kind")
        return
    unused = scope.unused_coordinate()
    if unused:
        raise DomainError(f"a {scope.kind} scope names no {unused}; leave it empty", field=f"scope_{unused}")
    if not scope.cluster:
        raise DomainError("required for this scope kind", field="scope_cluster")
    if scope.kind == ScopeKind.NAMESPACE and not scope.namespace:
        raise DomainError("required for a namespace scope", field="scope_namespace")
    if scope.kind == ScopeKind.APPLICATION and not scope.application:
        raise DomainError("required for an application scope", field="scope_application")
    problem = "no cluster is registered yet" if _scope_resolver is None else _scope_resolver(scope)
    if problem:
        raise DomainError(problem, field="scope_cluster")


def binding_create(
    *,
    by: User,
    role: str,
    scope: Scope,
    user: User | None = None,
    team: Team | None = None,
    expires_at: datetime | None = None,
) -> RoleBinding:
    """Grant ``role`` at ``scope``. Rule: only someone who may configure at that scope may grant there."""
    if role not in Role.values:
        raise DomainError(f"unknown role {role!r}; one of {', '.join(Role.values)}", field="role")
    if (user is None) == (team is None):
        raise DomainError("name exactly one of user or team", field="user")
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("must be in the future", field="expires_at")
    check_scope(scope)
    if not can_at(by, Action.CONFIGURE, scope):
        raise ForbiddenError(f"you may not manage bindings at {scope.label()}")
    try:
        with transaction.atomic():
            binding = RoleBinding.objects.create(
                role=role,
                user=user,
                team=team,
                scope_kind=scope.kind,
                scope_cluster=scope.cluster,
                scope_namespace=scope.namespace,
                scope_application=scope.application,
                expires_at=expires_at,
                created_by=by,
            )
            audit_record(
                action="users.rolebinding.create",
                target=binding,
                scope={"cluster": scope.cluster, "namespace": scope.namespace, "application": scope.application},
                changes={
                    "role": {"before": None, "after": role},
                    "subject": {"before": None, "after": str(user or team)},
                    "expires_at": {"before": None, "after": expires_at.isoformat() if expires_at else None},
                },
            )
    except IntegrityError:
        raise ConflictError("this binding already exists", field="role") from None
    return binding


def binding_delete(*, by: User, binding: RoleBinding) -> None:
    if not can_at(by, Action.CONFIGURE, binding.scope):
        raise ForbiddenError(f"you may not manage bindings at {binding.scope.label()}")
    with transaction.atomic():
        audit_record(
            action="users.rolebinding.delete",
            target=binding,
            scope={
                "cluster": binding.scope_cluster,
                "namespace": binding.scope_namespace,
                "application": binding.scope_application,
            },
            changes={"role": {"before": binding.role, "after": None}},
        )
        binding.delete()
