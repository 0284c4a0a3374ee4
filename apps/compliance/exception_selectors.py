"""Reads of compliance exceptions for the portal and the API, restricted to the exceptions whose scope lies within
what the viewer may read (a namespace operator sees that namespace's, never a cluster-wide or global one).

An exception's state is a rule of the clock (:meth:`PolicyException.state_at`); the filters here are the same rule
as queries, so a list filtered by state agrees with the state each row shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from apps.compliance.models import ExceptionState, PolicyException, Result
from apps.core.access import Action, restrict

EXPIRING_SOON_DAYS = 7
COVERED_SHOWN = 50
EXPIRING_SHOWN = 50


def state_q(state: str, now: datetime) -> Q:
    """The rows in ``state`` at ``now`` (revoked beats everything; then expiry; then approval)."""
    live = Q(revoked_at__isnull=True, expires_at__gt=now)
    return {
        ExceptionState.REVOKED: Q(revoked_at__isnull=False),
        ExceptionState.EXPIRED: Q(revoked_at__isnull=True, expires_at__lte=now),
        ExceptionState.ACTIVE: live & Q(approved_at__isnull=False),
        ExceptionState.PENDING: live & Q(approved_at__isnull=True),
    }[ExceptionState(state)]


def exceptions(
    viewer: Any,
    *,
    state: str = "",
    policy: str = "",
    check: str = "",
    expiring_within_days: int | None = None,
    scope_kind: str = "",
    cluster: str = "",
    namespace: str = "",
    application: str = "",
    now: datetime | None = None,
) -> QuerySet[PolicyException]:
    """The exceptions the viewer may read that match the filters, soonest expiry first. ``expiring_within_days``
    keeps the active ones that expire within that many days."""
    now = now or datetime.now(UTC)
    rows = restrict(viewer, Action.READ, PolicyException.objects.all())
    if state:
        rows = rows.filter(state_q(state, now))
    if policy:
        rows = rows.filter(policy__key=policy)
    if check:
        rows = rows.filter(check_id=check)
    if expiring_within_days is not None:
        rows = rows.filter(
            state_q(ExceptionState.ACTIVE, now), expires_at__lte=now + timedelta(days=expiring_within_days)
        )
    if scope_kind:
        rows = rows.filter(scope_kind=scope_kind)
    if cluster:
        rows = rows.filter(scope_cluster=cluster)
    if namespace:
        rows = rows.filter(scope_namespace=namespace)
    if application:
        rows = rows.filter(scope_application=application)
    return rows.select_related("policy", "requested_by", "approved_by").order_by("expires_at", "id")


def exception(viewer: Any, pk: int) -> PolicyException | None:
    """One exception the viewer may read (None when there is none, or it is outside their scopes)."""
    return exceptions(viewer).filter(pk=pk).first()


def expiring_soon(viewer: Any, days: int = EXPIRING_SOON_DAYS) -> list[PolicyException]:
    """Active exceptions the viewer may read that expire within ``days``, soonest first (the page's expiring-soon
    section shows the first ``EXPIRING_SHOWN``; the list filtered by ``expiring_within_days`` has them all)."""
    return list(exceptions(viewer, expiring_within_days=days)[:EXPIRING_SHOWN])


def covered_results(viewer: Any, exception: PolicyException) -> list[Result]:
    """The current results the exception excuses (``excepted``) that the viewer may read, the first few."""
    rows = restrict(viewer, Action.READ, Result.objects.filter(exception=exception))
    return list(rows.select_related("workload", "cluster").order_by("cluster_id", "namespace", "id")[:COVERED_SHOWN])
