"""Rule and subscription services. Rules (global configuration) route event kinds x scope x minimum severity to
channels; a subscription is one user's own rule to their address, at a scope they may read."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from apps.audit.services import audit_record
from apps.core.access import Action, Scope, ScopeKind, can_at
from apps.core.domain_events import Severity
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.notifications.models import Channel, Rule, Subscription
from apps.notifications.services.channels import check_configure

KIND_GLOB = re.compile(r"^[a-z0-9_.*?\[\]-]{1,100}$")
RULE_FIELDS = (
    "name",
    "kinds",
    "min_severity",
    "group_window_seconds",
    "repeat_interval_seconds",
    "notify_resolved",
    "enabled",
)
MAX_WINDOW = 86400


def clean_kinds(kinds: Any) -> list[str]:
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise DomainError("kinds: a non-empty list of event kinds or globs (clusters.*)", field="kinds")
    for kind in kinds:
        if not KIND_GLOB.match(kind):
            raise DomainError(f"{kind!r} is not an event kind or glob", field="kinds")
    return list(dict.fromkeys(kinds))


def clean_scope(kind: str, cluster: str, namespace: str, application: str) -> Scope:
    if kind not in ScopeKind.values:
        raise DomainError(f"unknown scope kind {kind!r}", field="scope_kind")
    scope = Scope(kind, str(cluster or ""), namespace or "", application or "")
    unused = scope.unused_coordinate()
    if unused:
        raise DomainError(f"a {kind} scope names no {unused}", field=f"scope_{unused}")
    if kind != ScopeKind.GLOBAL and not scope.cluster:
        raise DomainError(f"a {kind} scope needs a cluster", field="scope_cluster")
    if kind == ScopeKind.NAMESPACE and not scope.namespace:
        raise DomainError("a namespace scope needs a namespace", field="scope_namespace")
    if kind == ScopeKind.APPLICATION and not scope.application:
        raise DomainError("an application scope needs an application", field="scope_application")
    return scope


def _common(values: dict[str, Any]) -> None:
    if "min_severity" in values and values["min_severity"] not in Severity.__members__.values():
        raise DomainError(f"unknown severity {values['min_severity']!r}", field="min_severity")
    for name in ("group_window_seconds", "repeat_interval_seconds"):
        if name in values and not 0 <= int(values[name]) <= MAX_WINDOW:
            raise DomainError(f"{name} must be between 0 and {MAX_WINDOW}", field=name)
    if "kinds" in values:
        values["kinds"] = clean_kinds(values["kinds"])


def _scope_values(values: dict[str, Any], current: Scope) -> dict[str, str]:
    scope = clean_scope(
        values.pop("scope_kind", current.kind),
        values.pop("scope_cluster", current.cluster),
        values.pop("scope_namespace", current.namespace),
        values.pop("scope_application", current.application),
    )
    return Rule.scope_values(scope)


def _channels(ids: Any) -> list[Channel]:
    wanted = {int(i) for i in ids or []}
    found = list(Channel.objects.filter(pk__in=wanted))
    missing = wanted - {c.pk for c in found}
    if missing:
        raise DomainError(f"no channel {min(missing)}", field="channels")
    return found


def rule_save(*, rule: Rule | None = None, by: Any = None, channels: Any = None, **values: Any) -> Rule:
    """Create (``rule`` None) or change a rule."""
    check_configure(by, "changing notification rules")
    unknown = set(values) - set(RULE_FIELDS) - {"scope_kind", "scope_cluster", "scope_namespace", "scope_application"}
    if unknown:
        raise DomainError(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
    creating = rule is None
    target = rule or Rule()
    if creating and "kinds" not in values:
        raise DomainError("kinds are required", field="kinds")
    _common(values)
    scope = _scope_values(values, target.scope)
    for key, value in {**values, **scope}.items():
        setattr(target, key, value)
    if not target.name.strip():
        raise DomainError("a rule needs a name", field="name")
    chosen = _channels(channels) if channels is not None else None
    try:
        with transaction.atomic():
            target.save()
            if chosen is not None:
                target.channels.set(chosen)
            audit_record(
                action=f"notifications.rule.{'create' if creating else 'update'}",
                target=target,
                changes={
                    **values,
                    **scope,
                    **({"channels": sorted(c.pk for c in chosen)} if chosen is not None else {}),
                },
                scope={},
            )
    except IntegrityError:
        raise ConflictError(f"a rule named {target.name!r} exists", field="name") from None
    return target


def rule_delete(*, rule: Rule, by: Any = None) -> None:
    check_configure(by, "deleting a notification rule")
    with transaction.atomic():
        audit_record(action="notifications.rule.delete", target=rule, scope={})
        rule.delete()


def subscription_create(
    *,
    by: Any,
    email: str = "",
    kinds: Any = None,
    min_severity: str = Severity.WARNING,
    scope_kind: str = ScopeKind.GLOBAL,
    scope_cluster: str = "",
    scope_namespace: str = "",
    scope_application: str = "",
    group_window_seconds: int = 30,
) -> Subscription:
    """Rule: a user subscribes only at a scope where they may read (compared whole)."""
    if by is None or not getattr(by, "is_authenticated", False):
        raise ForbiddenError("a subscription belongs to a signed-in user")
    values: dict[str, Any] = {
        "kinds": kinds,
        "min_severity": min_severity,
        "group_window_seconds": group_window_seconds,
    }
    _common(values)
    scope = clean_scope(scope_kind, scope_cluster, scope_namespace, scope_application)
    if not can_at(by, Action.READ, scope):
        raise ForbiddenError("you may subscribe only where you may read", field="scope_kind")
    address = (email or by.email or "").strip()
    try:
        validate_email(address)
    except ValidationError:
        raise DomainError("an e-mail address is required", field="email") from None
    with transaction.atomic():
        sub = Subscription.objects.create(user=by, email=address, **values, **Subscription.scope_values(scope))
        audit_record(
            action="notifications.subscription.create",
            target=sub,
            changes={"kinds": values["kinds"], "min_severity": min_severity, **Subscription.scope_values(scope)},
            scope={},
        )
    return sub


def subscription_delete(*, subscription: Subscription, by: Any) -> None:
    if by is None or (subscription.user_id != by.pk and not can_at(by, Action.CONFIGURE, Scope())):
        raise ForbiddenError("only its owner deletes a subscription")
    with transaction.atomic():
        audit_record(action="notifications.subscription.delete", target=subscription, scope={})
        subscription.delete()
