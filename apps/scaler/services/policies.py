"""Scaling policies (with their schedule windows): created, changed and deleted with an audit event each; a
change bumps the policy's version (decisions record the version they were made under)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.audit.services import audit_record
from apps.clusters.models import Application
from apps.core.access import Action, can
from apps.core.errors import DomainError, ForbiddenError
from apps.scaler.models import ScalingPolicy, ScheduleWindow
from apps.scaler.services.evaluation_requests import request_evaluation
from apps.scaler.services.validation import clean_policy


def audit_scope(application: Application) -> dict[str, str]:
    return {"cluster": str(application.cluster_id), "namespace": application.namespace, "application": application.name}


def _snapshot(policy: ScalingPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "enabled": policy.enabled,
        "mode": policy.mode,
        "min_replicas": policy.min_replicas,
        "max_replicas": policy.max_replicas,
        "metrics": policy.metrics,
        "behavior": policy.behavior,
        "predictive": policy.predictive,
        "conflict_mode": policy.conflict_mode,
        "workload": policy.workload_id,
        "schedules": list(
            policy.schedules.order_by("name").values(
                "name", "rrule", "timezone", "duration_minutes", "min_replicas", "max_replicas", "priority"
            )
        ),
    }


def _replace_schedules(policy: ScalingPolicy, windows: Sequence[Mapping[str, Any]]) -> None:
    policy.schedules.all().delete()
    ScheduleWindow.objects.bulk_create([ScheduleWindow(policy=policy, **window) for window in windows])


def _check(by: Any, application: Application, what: str) -> None:
    """Rule: admins of the application (configure) change its policies; ``by`` None is ICC itself."""
    if by is not None and not can(by, Action.CONFIGURE, application):
        raise ForbiddenError(f"{what} needs the admin role on the application")


def policy_create(*, application: Application, metrics: Any, by: Any = None, **values: Any) -> ScalingPolicy:
    """A scaling policy for an application; every input is validated and named on error."""
    _check(by, application, "creating a scaling policy")
    cleaned = clean_policy({**values, "metrics": metrics}, application, None)
    windows = cleaned.pop("schedules", [])
    name = cleaned.setdefault("name", "default")
    if ScalingPolicy.objects.filter(application=application, name=name).exists():
        raise DomainError(f"application {application} already has a policy named {name!r}", field="name")
    try:
        with transaction.atomic():
            policy = ScalingPolicy.objects.create(
                application=application, created_by=by if getattr(by, "is_authenticated", False) else None, **cleaned
            )
            _replace_schedules(policy, windows)
            audit_record(
                action="scaler.policy.create",
                target=policy,
                scope=audit_scope(application),
                changes={k: [None, v] for k, v in _snapshot(policy).items()},
            )
    except IntegrityError:
        raise DomainError(f"application {application} already has a policy named {name!r}", field="name") from None
    request_evaluation(policy, trigger="manual")
    return policy


def policy_update(policy: ScalingPolicy, *, by: Any = None, **values: Any) -> ScalingPolicy:
    """Change some fields (and replace the schedules when given); the version goes up by one."""
    _check(by, policy.application, "changing a scaling policy")
    cleaned = clean_policy(values, policy.application, policy)
    renamed = "name" in cleaned and cleaned["name"] != policy.name
    if renamed and ScalingPolicy.objects.filter(application=policy.application, name=cleaned["name"]).exists():
        raise DomainError(f"a policy named {cleaned['name']!r} already exists", field="name")
    windows = cleaned.pop("schedules", None)
    with transaction.atomic():
        locked = ScalingPolicy.objects.select_for_update().get(pk=policy.pk)
        before = _snapshot(locked)
        for key, value in cleaned.items():
            setattr(locked, key, value)
        if windows is not None:
            _replace_schedules(locked, windows)
        locked.version = F("version") + 1
        locked.save()
        locked.refresh_from_db()
        after = _snapshot(locked)
        changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        audit_record(
            action="scaler.policy.update",
            target=locked,
            scope=audit_scope(locked.application),
            changes=changes,
            metadata={"version": locked.version},
        )
    request_evaluation(locked, trigger="manual")
    return locked


def policy_delete(policy: ScalingPolicy, *, by: Any = None) -> None:
    """Remove a policy (audited with what it was)."""
    _check(by, policy.application, "removing a scaling policy")
    with transaction.atomic():
        audit_record(
            action="scaler.policy.delete",
            target=policy,
            scope=audit_scope(policy.application),
            changes={k: [v, None] for k, v in _snapshot(policy).items()},
        )
        policy.delete()
