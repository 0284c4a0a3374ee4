"""A scope given as values (``scope_kind``, ``scope_cluster``, ``scope_namespace``, ``scope_application``), as forms
and APIs send where a compliance binding or exception, or a calendar entry, applies: checked whole, as access
control compares scopes, and never read as narrower or wider than its kind says."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.core.access import Scope, ScopeKind
from apps.core.errors import DomainError

NEEDED = {
    ScopeKind.CLUSTER: ("cluster",),
    ScopeKind.NAMESPACE: ("cluster", "namespace"),
    ScopeKind.APPLICATION: ("cluster", "application"),
}


def scope_from(values: Mapping[str, Any]) -> Scope:
    """The scope the values name; a DomainError naming the field when a kind is unknown, a coordinate the kind does
    not use is set, or one it needs is missing."""
    try:
        scope = Scope(
            ScopeKind(values.get("scope_kind") or ScopeKind.GLOBAL),
            str(values.get("scope_cluster") or ""),
            str(values.get("scope_namespace") or ""),
            str(values.get("scope_application") or ""),
        )
    except ValueError:
        raise DomainError("scope_kind must be global, cluster, namespace or application", field="scope_kind") from None
    unused = scope.unused_coordinate()
    if unused:
        raise DomainError(f"a {scope.kind} scope does not name a {unused}", field=f"scope_{unused}")
    given = {"cluster": scope.cluster, "namespace": scope.namespace, "application": scope.application}
    for name in NEEDED.get(ScopeKind(scope.kind), ()):
        if not given[name]:
            raise DomainError(f"a {scope.kind} scope names its {name}", field=f"scope_{name}")
    return scope
