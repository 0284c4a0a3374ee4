"""Changing a subscription: its owner's, at a scope they may read — the same checks as
:func:`apps.notifications.services.rules.subscription_create`, whose helpers this uses."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from apps.audit.services import audit_record
from apps.core.access import Action, can_at
from apps.core.errors import DomainError, ForbiddenError
from apps.notifications.models import Subscription
from apps.notifications.services.rules import _common, clean_scope

FIELDS = ("kinds", "min_severity", "email", "group_window_seconds", "enabled")
SCOPE_FIELDS = ("scope_kind", "scope_cluster", "scope_namespace", "scope_application")


def subscription_update(*, subscription: Subscription, by: Any, **values: Any) -> Subscription:
    """Rule: only its owner changes a subscription, and only to a scope where they may read (compared whole);
    an empty e-mail address means the account's own."""
    if by is None or not getattr(by, "is_authenticated", False) or subscription.user_id != by.pk:
        raise ForbiddenError("only its owner changes a subscription")
    unknown = set(values) - set(FIELDS) - set(SCOPE_FIELDS)
    if unknown:
        raise DomainError(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
    plain = {k: v for k, v in values.items() if k in FIELDS}
    _common(plain)
    current = subscription.scope
    scope = clean_scope(
        values.get("scope_kind", current.kind),
        values.get("scope_cluster", current.cluster),
        values.get("scope_namespace", current.namespace),
        values.get("scope_application", current.application),
    )
    if not can_at(by, Action.READ, scope):
        raise ForbiddenError("you may subscribe only where you may read", field="scope_kind")
    if "email" in plain:
        plain["email"] = (plain["email"] or by.email or "").strip()
        try:
            validate_email(plain["email"])
        except ValidationError:
            raise DomainError("an e-mail address is required", field="email") from None
    changes = {**plain, **Subscription.scope_values(scope)}
    for key, value in changes.items():
        setattr(subscription, key, value)
    with transaction.atomic():
        subscription.save()
        audit_record(action="notifications.subscription.update", target=subscription, changes=changes, scope={})
    return subscription
