"""Writes on clusters: register, update, pause, delete, ask for a sync, rotate the credentials' encryption.
Each one checks its caller and is audited in the same transaction."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.clusters import events, notify
from apps.clusters import gateway as gateways
from apps.clusters.crypto import decrypt, encrypt
from apps.clusters.models import Cluster, ClusterStatus
from apps.clusters.services.connection import build_credentials, check_in_cluster, probe
from apps.core.access import Action
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.core.events import dashboard_changed, publish_many
from apps.core.tasking import enqueue_on_commit

logger = logging.getLogger(__name__)


def _scope(cluster: Cluster) -> dict[str, str]:
    return {"cluster": str(cluster.pk)}


def check_caller(by: Any, action: str, obj: Any, what: str) -> None:
    """Rule of every write below: the caller ``by`` needs ``action`` on ``obj`` (global scope when None).
    ``by`` None is ICC itself (management commands, tasks, tests that set things up)."""
    from apps.core.access import GLOBAL, can, can_at

    if by is None:
        return
    allowed = can_at(by, action, GLOBAL) if obj is None else can(by, action, obj)
    if not allowed:
        raise ForbiddenError(f"your role does not allow {what} here")


def cluster_register(
    *,
    name: str,
    description: str = "",
    sync_interval_seconds: int | None = None,
    by: Any = None,
    **connection: Any,
) -> Cluster:
    """Register a cluster after testing the connection; its first full sync runs right after commit.
    Rule: global admins register clusters."""
    check_caller(by, Action.CONFIGURE, None, "registering a cluster")
    name = (name or "").strip()
    if Cluster.objects.filter(name=name).exists():
        raise ConflictError(f"a cluster named {name!r} already exists", field="name")
    check_in_cluster(str(connection.get("auth_mode") or ""), None)
    credentials, blame, context = build_credentials(**connection)
    result = probe(credentials, field=blame)
    with transaction.atomic():
        cluster = Cluster.objects.create(
            name=name,
            description=description,
            api_url=credentials.server,
            auth_mode=connection["auth_mode"],
            kubeconfig_context=context,
            credentials=encrypt(credentials.to_dict()),
            allow_insecure=bool(connection.get("allow_insecure")),
            server_version=result.server_version,
            missing_permissions=result.missing_optional,
            sync_interval_seconds=sync_interval_seconds or _default_interval(),
            status=ClusterStatus.PENDING,
            created_by=_current_user(),
        )
        audit_record(
            action="clusters.cluster.register",
            target=cluster,
            changes={
                "name": [None, name],
                "api_url": [None, cluster.api_url],
                "auth_mode": [None, cluster.auth_mode],
                "credentials": [None, "set"],
            },
            metadata={"server_version": result.server_version, "missing_permissions": result.missing_optional},
            scope=_scope(cluster),
        )
        notify.permissions_checked(cluster, before=[], after=result.missing_optional)
        schedule_sync(cluster)
        publish_many([events.list_changed(events.CLUSTERS, cluster.pk)])
        dashboard_changed("cluster.registered")
    return cluster


def _default_interval() -> int:
    from django.conf import settings

    return int(settings.CLUSTER_SYNC_SECONDS)


def _current_user() -> Any:
    from apps.core import context

    user = context.current().user
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def schedule_sync(cluster: Cluster) -> None:
    from apps.clusters.tasks import full_sync_task

    enqueue_on_commit(full_sync_task, cluster.pk)


def cluster_sync_request(*, cluster: Cluster, by: Any) -> None:
    """Ask for a full sync now (it runs on a worker; single-flight per cluster).

    Rule: operators of the cluster (act) may ask; a paused cluster is not synced (409 naming ``paused``).
    Audited as ``clusters.cluster.sync``; the cluster's page shows the request at once."""
    from apps.core.access import can

    if not can(by, Action.ACT, cluster):
        raise ForbiddenError(f"asking for a sync of {cluster.name} needs the operator role on it")
    if cluster.paused:
        raise ConflictError(f"cluster {cluster.name} is paused; resume it first", field="paused")
    with transaction.atomic():
        audit_record(
            action="clusters.cluster.sync",
            target=cluster,
            message="full sync requested",
            scope={"cluster": str(cluster.pk)},
        )
        events.cluster_changed(cluster.pk, "sync", lists=False)
        schedule_sync(cluster)


def cluster_update(
    cluster: Cluster,
    *,
    description: str | None = None,
    sync_interval_seconds: int | None = None,
    connection: dict[str, Any] | None = None,
    by: Any = None,
) -> Cluster:
    """Change the description or sync interval, or replace the credentials (tested before they are kept).
    Rule: admins of the cluster (configure) change it."""
    check_caller(by, Action.CONFIGURE, cluster, "changing this cluster")
    changes: dict[str, Any] = {}
    probe_result = None
    new_credentials = None
    context = cluster.kubeconfig_context
    if connection:
        check_in_cluster(str(connection.get("auth_mode") or ""), cluster)
        new_credentials, blame, context = build_credentials(**connection)
        probe_result = probe(new_credentials, field=blame)
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if description is not None and description != cluster.description:
            changes["description"] = [cluster.description, description]
            cluster.description = description
        if sync_interval_seconds is not None and sync_interval_seconds != cluster.sync_interval_seconds:
            if sync_interval_seconds < 10:
                raise DomainError("at least 10 seconds", field="sync_interval_seconds")
            changes["sync_interval_seconds"] = [cluster.sync_interval_seconds, sync_interval_seconds]
            cluster.sync_interval_seconds = sync_interval_seconds
        if new_credentials is not None and probe_result is not None and connection is not None:
            changes["credentials"] = ["set", "replaced"]
            if new_credentials.server != cluster.api_url:
                changes["api_url"] = [cluster.api_url, new_credentials.server]
            if connection["auth_mode"] != cluster.auth_mode:
                changes["auth_mode"] = [cluster.auth_mode, connection["auth_mode"]]
            cluster.api_url = new_credentials.server
            cluster.auth_mode = connection["auth_mode"]
            cluster.kubeconfig_context = context
            cluster.allow_insecure = bool(connection.get("allow_insecure"))
            cluster.credentials = encrypt(new_credentials.to_dict())
            cluster.server_version = probe_result.server_version
            notify.permissions_checked(
                cluster, before=cluster.missing_permissions or [], after=probe_result.missing_optional
            )
            cluster.missing_permissions = probe_result.missing_optional
        if not changes:
            return cluster
        cluster.save()
        audit_record(action="clusters.cluster.update", target=cluster, changes=changes, scope=_scope(cluster))
        if "credentials" in changes:
            gateways.forget(cluster.pk)
            schedule_sync(cluster)
        events.cluster_changed(cluster.pk, "updated")
    return cluster


def cluster_set_paused(cluster: Cluster, *, paused: bool, reason: str = "", by: Any = None) -> Cluster:
    """Pause (stop syncing and watching; keep the observed data) or resume a cluster (configure)."""
    check_caller(by, Action.CONFIGURE, cluster, "pausing or resuming this cluster")
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if cluster.paused == paused:
            return cluster
        cluster.paused = paused
        cluster.status = ClusterStatus.PAUSED if paused else ClusterStatus.PENDING
        cluster.save(update_fields=["paused", "status", "updated_at"])
        audit_record(
            action="clusters.cluster.pause" if paused else "clusters.cluster.resume",
            target=cluster,
            message=reason,
            changes={"paused": [not paused, paused]},
            scope=_scope(cluster),
        )
        if not paused:
            schedule_sync(cluster)
        events.cluster_changed(cluster.pk, "paused" if paused else "resumed")
    return cluster


def cluster_delete(cluster: Cluster, *, confirm: str, reason: str = "", by: Any = None) -> None:
    """Remove a cluster and everything observed in it. ``confirm`` must repeat the cluster's name (configure)."""
    check_caller(by, Action.CONFIGURE, cluster, "removing this cluster")
    if confirm != cluster.name:
        raise DomainError(f"type the cluster's name ({cluster.name}) to confirm", field="confirm")
    with transaction.atomic():
        counts = {
            "workloads": cluster.workloads.count(),
            "pods": cluster.pods.count(),
            "applications": cluster.applications.count(),
        }
        audit_record(
            action="clusters.cluster.delete",
            target=cluster,
            message=reason,
            changes={"name": [cluster.name, None]},
            metadata={"removed": counts},
            scope=_scope(cluster),
        )
        pk = cluster.pk
        cluster.delete()
        publish_many([events.list_changed(events.CLUSTERS, pk)])
        dashboard_changed("cluster.deleted")
    gateways.forget(pk)


def rotate_credentials() -> int:
    """Re-encrypt every cluster's credentials with the newest key (after adding one to ICC_ENCRYPTION_KEYS)."""
    from apps.clusters.crypto import rotate

    count = 0
    with transaction.atomic():
        for cluster in Cluster.objects.select_for_update():
            decrypt(cluster.credentials)  # a clear error when no key reads it
            cluster.credentials = rotate(cluster.credentials)
            cluster.save(update_fields=["credentials", "updated_at"])
            count += 1
        audit_record(action="clusters.credentials.rotate", message=f"{count} clusters re-encrypted")
    return count
