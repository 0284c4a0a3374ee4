"""Writes of the admission webhook: its settings per cluster, rotating its path token, applying the generated
``ValidatingWebhookConfiguration`` to the cluster (or removing it) through the gateway.

Every one needs configure rights at the cluster's scope, is audited ``compliance.webhook.*`` (never with the token)
and reaches the webhook's in-memory snapshot right after commit. Downloading the full configuration (it carries
the token) is recorded as well.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.clusters import gateway as gateways
from apps.clusters.models import Cluster
from apps.compliance import webhook_config
from apps.compliance.cache import policies_changed
from apps.compliance.models import AdmissionWebhook, FailurePolicy
from apps.core.access import Action, Scope, ScopeKind, can_at
from apps.core.errors import DomainError, ForbiddenError

MIN_TIMEOUT, MAX_TIMEOUT = 1, 30


def _check(by: Any, cluster: Cluster, what: str) -> None:
    if by is not None and not can_at(by, Action.CONFIGURE, Scope(ScopeKind.CLUSTER, str(cluster.pk))):
        raise ForbiddenError(f"your role does not allow {what} on this cluster")


def _scope(cluster: Cluster) -> dict[str, str]:
    return {"cluster": str(cluster.pk)}


def webhook_configure(
    *, cluster: Cluster, failure_policy: str | None = None, timeout_seconds: int | None = None, by: Any = None
) -> AdmissionWebhook:
    """Create or change a cluster's webhook settings (defaults: COMPLIANCE_WEBHOOK_FAILURE_POLICY and _TIMEOUT)."""
    from django.conf import settings

    _check(by, cluster, "configuring the admission webhook")
    if failure_policy is not None and failure_policy not in FailurePolicy.values:
        raise DomainError("failure_policy is Ignore (fail open) or Fail (fail closed)", field="failure_policy")
    if timeout_seconds is not None and (
        not isinstance(timeout_seconds, int) or not MIN_TIMEOUT <= timeout_seconds <= MAX_TIMEOUT
    ):
        raise DomainError(f"timeout_seconds is {MIN_TIMEOUT} to {MAX_TIMEOUT}", field="timeout_seconds")
    with transaction.atomic():
        webhook, created = AdmissionWebhook.objects.select_for_update().get_or_create(
            cluster=cluster,
            defaults={
                "failure_policy": settings.COMPLIANCE_WEBHOOK_FAILURE_POLICY,
                "timeout_seconds": settings.COMPLIANCE_WEBHOOK_TIMEOUT_SECONDS,
            },
        )
        changes: dict[str, list[Any]] = {}
        for field, value in (("failure_policy", failure_policy), ("timeout_seconds", timeout_seconds)):
            if value is not None and getattr(webhook, field) != value:
                changes[field] = [getattr(webhook, field), value]
                setattr(webhook, field, value)
        if changes:
            webhook.save()
        if created or changes:
            audit_record(
                action="compliance.webhook.configure",
                target=webhook,
                scope=_scope(cluster),
                changes=changes,
                metadata={"created": created},
            )
        policies_changed()
    return webhook


def webhook_rotate_token(*, webhook: AdmissionWebhook, by: Any = None) -> AdmissionWebhook:
    """A new path token: the old URL stops working at once (apply or download the configuration again)."""
    _check(by, webhook.cluster, "rotating the admission webhook's token")
    with transaction.atomic():
        locked = AdmissionWebhook.objects.select_for_update().get(pk=webhook.pk)
        locked.token_generation += 1
        locked.save(update_fields=["token_generation", "updated_at"])
        audit_record(action="compliance.webhook.rotate", target=locked, scope=_scope(locked.cluster))
        policies_changed()
    return locked


def webhook_download(*, webhook: AdmissionWebhook, by: Any = None, **where: Any) -> dict[str, Any]:
    """The full configuration (with the token) for someone who configures the cluster; recorded."""
    _check(by, webhook.cluster, "downloading the admission webhook's configuration")
    manifest = webhook_config.configuration(webhook, **where)
    with transaction.atomic():
        audit_record(action="compliance.webhook.download", target=webhook, scope=_scope(webhook.cluster))
    return manifest


def webhook_apply(*, webhook: AdmissionWebhook, by: Any = None, **where: Any) -> dict[str, Any]:
    """Create or replace the configuration in the cluster (ICC needs to write validatingwebhookconfigurations)."""
    _check(by, webhook.cluster, "applying the admission webhook")
    manifest = webhook_config.configuration(webhook, **where)
    gateway = gateways.for_cluster(webhook.cluster)
    path = f"{webhook_config.PATH}/{webhook_config.NAME}"
    try:
        existing = gateway.get(path)
    except gateways.NotFound:
        stored = gateway.create(webhook_config.PATH, manifest)
    else:
        manifest["metadata"]["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion", "")
        stored = gateway.json("PUT", path, body=manifest, retries=1)
    with transaction.atomic():
        AdmissionWebhook.objects.filter(pk=webhook.pk).update(applied_at=datetime.now(UTC), applied_by=by)
        audit_record(
            action="compliance.webhook.apply",
            target=webhook,
            scope=_scope(webhook.cluster),
            metadata={"failure_policy": webhook.failure_policy, "timeout_seconds": webhook.timeout_seconds},
        )
    return {"name": webhook_config.NAME, "resource_version": (stored.get("metadata") or {}).get("resourceVersion")}


def webhook_remove(*, webhook: AdmissionWebhook, confirm: str, by: Any = None) -> None:
    """Delete the configuration from the cluster (typed cluster name) and forget the settings."""
    _check(by, webhook.cluster, "removing the admission webhook")
    if confirm != webhook.cluster.name:
        raise DomainError("type the cluster's name to confirm", field="confirm")
    gateway = gateways.for_cluster(webhook.cluster)
    with contextlib.suppress(gateways.NotFound):  # never applied, or removed by hand: the settings still go
        gateway.delete(f"{webhook_config.PATH}/{webhook_config.NAME}")
    with transaction.atomic():
        audit_record(action="compliance.webhook.remove", target=webhook, scope=_scope(webhook.cluster))
        webhook.delete()
        policies_changed()
