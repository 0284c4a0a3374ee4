"""The brakes: the kill switch of one application and the global pause stop every scaler write at once."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.clusters.models import Application
from apps.core.access import GLOBAL, Action, Scope, ScopeKind, can, can_at
from apps.core.domain_events import DomainEvent, Severity, emit
from apps.core.errors import DomainError, ForbiddenError
from apps.scaler.events import scaling_changed
from apps.scaler.models import ScalerSettings, ScalingPolicy
from apps.scaler.services.policies import audit_scope


def kill_switch_set(*, application: Application, on: bool, reason: str = "", by: Any) -> int:
    """Stop (or allow again) every scaler write for the application at once; returns the policies affected.

    Rule: operators of the application (act) flip it; open pages update after commit, whoever flipped it."""
    if not can(by, Action.ACT, application):
        raise ForbiddenError("the kill switch needs the operator role on the application")
    if not isinstance(on, bool):
        raise DomainError("true or false", field="on")
    with transaction.atomic():
        count = (
            ScalingPolicy.objects.filter(application=application)
            .exclude(kill_switch=on)
            .update(kill_switch=on, version=F("version") + 1, updated_at=timezone.now())
        )
        audit_record(
            action="scaler.kill_switch." + ("on" if on else "off"),
            target=application,
            scope=audit_scope(application),
            message=reason[:500],
            changes={"kill_switch": [not on, on]},
            metadata={"policies": count},
        )
        scaling_changed(application.pk, "kill_switch")  # update() sends no post_save: publish here
        if count:
            _announce_kill_switch(application, on, reason)
    return count


def _announce_kill_switch(application: Application, on: bool, reason: str) -> None:
    """A warning domain event when the kill switch stops an application's scaling; a resolving one when it is off."""
    emit(
        DomainEvent(
            kind="scaler.kill_switch" if on else "scaler.kill_switch_off",
            severity=Severity.WARNING if on else Severity.INFO,
            subject=f"application {application.name}",
            text=(
                f"Scaling of {application.name} stopped by the kill switch"
                if on
                else f"Scaling of {application.name} allowed again"
            )
            + (f": {reason}" if reason else "."),
            scope=Scope(ScopeKind.APPLICATION, str(application.cluster_id), application=application.name),
            link=f"/scaler/applications/{application.pk}/",
            dedup_key=f"scaler.kill_switch:{application.pk}",
            resolves=not on,
        )
    )


def kill_switch_on(application_id: int) -> bool:
    return ScalingPolicy.objects.filter(application_id=application_id, kill_switch=True).exists()


def global_pause_set(*, on: bool, reason: str = "", by: Any) -> ScalerSettings:
    """Stop (or resume) every scaler write everywhere at once. Rule: global admins only."""
    if not can_at(by, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError("pausing the scaler everywhere needs the admin role at global scope")
    if not isinstance(on, bool):
        raise DomainError("true or false", field="on")
    with transaction.atomic():
        row, _ = ScalerSettings.objects.select_for_update().get_or_create(pk=1)
        before = row.paused
        row.paused, row.paused_reason = on, reason[:1000] if on else ""
        row.save()
        audit_record(
            action="scaler.global_pause." + ("on" if on else "off"),
            target=row,
            message=reason[:500],
            changes={"paused": [before, on]},
        )
        if before != on:
            emit(
                DomainEvent(
                    kind="scaler.global_pause" if on else "scaler.global_resume",
                    severity=Severity.WARNING if on else Severity.INFO,
                    subject="scaler",
                    text=("The scaler is paused everywhere" if on else "The scaler runs again")
                    + (f": {reason}" if reason and on else "."),
                    link="/scaler/",
                    dedup_key="scaler.global_pause",
                    resolves=not on,
                )
            )
    return row


def globally_paused() -> bool:
    return ScalerSettings.objects.filter(pk=1, paused=True).exists()
