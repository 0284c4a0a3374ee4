"""Compliance exceptions, with four eyes.

``exception_request`` records who asked, why, the owner, a ticket and a required expiry (at most
``COMPLIANCE_EXCEPTION_MAX_DAYS`` ahead); it needs the operator role at the exception's scope. It takes effect
only once ``exception_approve`` is called by a *second* person with configure rights there (the requester can
never approve their own). ``exception_revoke`` ends it at once. Each write is audited and re-evaluates the
workloads after commit (a scan), so results follow; an exception that expires stops applying at the next
evaluation by itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.audit.services import audit_record
from apps.clusters.models import Cluster
from apps.compliance.cache import policies_changed
from apps.compliance.checks import check_get
from apps.compliance.models import ExceptionState, Policy, PolicyException
from apps.core.access import Action, Scope, can_at
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.core.scopes import scope_from as _scope

MAX_PATTERNS = 20


def _known_cluster(scope: Scope) -> None:
    """A scope names a registered cluster (checked after the rights, so nobody learns which ids exist)."""
    if scope.cluster and not (scope.cluster.isdigit() and Cluster.objects.filter(pk=int(scope.cluster)).exists()):
        raise DomainError(f"no cluster with id {scope.cluster!r}", field="scope_cluster")


def _check(by: Any, action: str, scope: Scope, what: str) -> None:
    if by is not None and not can_at(by, action, scope):
        raise ForbiddenError(f"your role does not allow {what} here")


def _audit_scope(exception: PolicyException) -> dict[str, str]:
    scope = exception.scope()
    return {k: v for k, v in (("cluster", scope.cluster), ("namespace", scope.namespace)) if v}


def _rescan() -> None:
    from apps.compliance.tasks import scan

    policies_changed()  # the admission webhook's snapshot follows at once
    transaction.on_commit(lambda: scan.apply_async(queue="analysis"))


def exception_request(
    *,
    policy: Policy,
    reason: str,
    owner: str,
    expires_at: datetime,
    check_id: str = "",
    match_names: list[str] | None = None,
    match_labels: dict[str, str] | None = None,
    image_pattern: str = "",
    ticket_url: str = "",
    by: Any = None,
    **scope_values: Any,
) -> PolicyException:
    """Ask for an exception (pending until a second person approves it)."""
    scope = _scope(scope_values)
    _check(by, Action.ACT, scope, "requesting a compliance exception")
    _known_cluster(scope)
    if not isinstance(reason, str) or not reason.strip():
        raise DomainError("an exception needs a reason", field="reason")
    if not isinstance(owner, str) or not owner.strip() or len(owner) > 150:
        raise DomainError("an exception needs an owner (who answers for it)", field="owner")
    now = datetime.now(UTC)
    latest = now + timedelta(days=settings.COMPLIANCE_EXCEPTION_MAX_DAYS)
    if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
        raise DomainError("expires_at is a date and time with a zone", field="expires_at")
    if not now < expires_at <= latest:
        raise DomainError(
            f"an exception expires in the future and within {settings.COMPLIANCE_EXCEPTION_MAX_DAYS} days",
            field="expires_at",
        )
    if check_id:
        try:
            check = check_get(check_id)
        except KeyError:
            check = None
        if policy.kind == "builtin" and (check is None or not _in_policy(check_id, policy.key)):
            raise DomainError(f"{check_id!r} is not a check of {policy.key}", field="check_id")
    names = match_names if match_names is not None else []
    if (
        not isinstance(names, list)
        or len(names) > MAX_PATTERNS
        or not all(isinstance(n, str) and 0 < len(n) <= 253 for n in names)
    ):
        raise DomainError(f"match_names is a list of at most {MAX_PATTERNS} name patterns", field="match_names")
    labels = match_labels if match_labels is not None else {}
    if (
        not isinstance(labels, dict)
        or len(labels) > MAX_PATTERNS
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        raise DomainError("match_labels maps label names to values", field="match_labels")
    if ticket_url and not re.match(r"^https?://", ticket_url):
        raise DomainError("a ticket link is an http(s) URL", field="ticket_url")
    with transaction.atomic():
        exception = PolicyException.objects.create(
            policy=policy,
            check_id=check_id,
            scope_kind=scope.kind,
            scope_cluster=scope.cluster,
            scope_namespace=scope.namespace,
            scope_application=scope.application,
            match_names=names,
            match_labels=labels,
            image_pattern=image_pattern[:300],
            reason=reason.strip(),
            owner=owner.strip(),
            ticket_url=ticket_url,
            expires_at=expires_at,
            requested_by=by if getattr(by, "is_authenticated", False) else None,
        )
        audit_record(
            action="compliance.exception.request",
            target=exception,
            scope=_audit_scope(exception),
            metadata={"policy": policy.key, "check_id": check_id, "expires_at": expires_at.isoformat()},
            message=reason[:500],
        )
        # No policies_changed(): the admission snapshot holds approved exceptions only; approval rebuilds it.
    return exception


def _in_policy(check_id: str, policy_key: str) -> bool:
    from apps.compliance.checks import checks_for_policy

    return any(c.id == check_id for c in checks_for_policy(policy_key))


def exception_approve(*, exception: PolicyException, by: Any) -> PolicyException:
    """Rule (four eyes): a second person with configure rights at the exception's scope approves it."""
    _check(by, Action.CONFIGURE, exception.scope(), "approving a compliance exception")
    if by is None or exception.requested_by_id == getattr(by, "pk", None):
        raise ForbiddenError("an exception is approved by someone other than who asked for it")
    with transaction.atomic():
        locked = PolicyException.objects.select_for_update().get(pk=exception.pk)
        state = locked.state_at(datetime.now(UTC))
        if state != ExceptionState.PENDING:
            raise ConflictError(f"this exception is {state}, not waiting for approval", field="state")
        locked.approved_by, locked.approved_at = by, datetime.now(UTC)
        locked.save(update_fields=["approved_by", "approved_at", "updated_at"])
        audit_record(action="compliance.exception.approve", target=locked, scope=_audit_scope(locked))
        _rescan()
    return locked


def exception_revoke(*, exception: PolicyException, by: Any, reason: str = "") -> PolicyException:
    """End an exception now (pending or active). A person says why (ICC itself, ``by`` None, need not)."""
    _check(by, Action.CONFIGURE, exception.scope(), "revoking a compliance exception")
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if by is not None and not reason:
        raise DomainError("say why the exception ends (it goes into the audit trail)", field="reason")
    with transaction.atomic():
        locked = PolicyException.objects.select_for_update().get(pk=exception.pk)
        if locked.revoked_at is not None:
            raise ConflictError("this exception is already revoked", field="state")
        locked.revoked_at = datetime.now(UTC)
        locked.save(update_fields=["revoked_at", "updated_at"])
        audit_record(
            action="compliance.exception.revoke", target=locked, scope=_audit_scope(locked), message=reason[:500]
        )
        _rescan()
    return locked


def expiring(within: timedelta = timedelta(days=7)) -> list[PolicyException]:
    """Active exceptions that expire within ``within`` (the expiring-soon list)."""
    now = datetime.now(UTC)
    return list(
        PolicyException.objects.filter(
            approved_at__isnull=False, revoked_at__isnull=True, expires_at__gt=now, expires_at__lte=now + within
        ).select_related("policy")
    )
