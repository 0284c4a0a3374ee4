"""Writes on clusters and actions on their workloads. Each one is audited in the same transaction.

Registration tests the connection first and says precisely what is wrong: unreachable, TLS verification
failed, 401 (credentials rejected) or 403 naming the verbs and resources ICC lacks (asked of the API server
with SelfSubjectAccessReview). Credentials are encrypted before they touch the database and never appear in
answers, logs or audit events (the audit records only *that* they changed).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.clusters import credentials as creds
from apps.clusters import events
from apps.clusters import gateway as gateways
from apps.clusters.crypto import decrypt, encrypt
from apps.clusters.kinds import workload_path
from apps.clusters.models import AuthMode, Cluster, ClusterStatus, Pod, Workload
from apps.core import outbound
from apps.core.access import Action
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.core.events import dashboard_changed, publish_many
from apps.core.tasking import enqueue_on_commit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Permission:
    verbs: tuple[str, ...]
    resource: str
    group: str = ""
    subresource: str = ""

    def label(self) -> str:
        name = f"{self.group}/{self.resource}" if self.group else self.resource
        return f"{', '.join(self.verbs)} {name}" + (f"/{self.subresource}" if self.subresource else "")


# Rule: ICC must be able to list and watch everything it observes; acting (scale, restart, logs, machine
# identity) is optional — a read-only registration works and shows what it cannot do.
REQUIRED = (
    Permission(("list", "watch"), "namespaces"),
    Permission(("list", "watch"), "nodes"),
    Permission(("list", "watch"), "pods"),
    Permission(("list", "watch"), "events"),
    Permission(("list", "watch"), "deployments", "apps"),
    Permission(("list", "watch"), "statefulsets", "apps"),
    Permission(("list", "watch"), "daemonsets", "apps"),
)
OPTIONAL = (
    Permission(("get", "update"), "deployments", "apps", "scale"),
    Permission(("get", "update"), "statefulsets", "apps", "scale"),
    Permission(("patch",), "deployments", "apps"),
    Permission(("patch",), "statefulsets", "apps"),
    Permission(("patch",), "daemonsets", "apps"),
    Permission(("get",), "pods", "", "log"),
    Permission(("create",), "tokenreviews", "authentication.k8s.io"),
)


def _missing(gateway: gateways.Gateway, permissions: tuple[Permission, ...]) -> list[str]:
    checks = [(p, verb) for p in permissions for verb in p.verbs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = list(
            pool.map(
                lambda c: gateway.access_review(c[1], c[0].resource, group=c[0].group, subresource=c[0].subresource),
                checks,
            )
        )
    lacking: dict[Permission, list[str]] = {}
    for (permission, verb), ok in zip(checks, allowed, strict=True):
        if not ok:
            lacking.setdefault(permission, []).append(verb)
    return [Permission(tuple(verbs), p.resource, p.group, p.subresource).label() for p, verbs in lacking.items()]


@dataclass
class Probe:
    server_version: str
    missing_optional: list[str]


def probe(credentials: creds.Credentials, *, field: str) -> Probe:
    """Connect and check permissions; raise a DomainError (400) naming ``field`` and what is wrong."""
    gateway = gateways.Gateway(credentials, timeout=8)
    try:
        version = gateway.version()
        missing = _missing(gateway, REQUIRED)
        if missing:
            raise gateways.Forbidden(
                "403 Forbidden — ICC lacks these permissions: "
                + "; ".join(missing)
                + " (grant them with a ClusterRole; see README)",
                kube_status=403,
            )
        optional = _missing(gateway, OPTIONAL)
    except gateways.KubeError as exc:
        target = field
        if field == "token" and isinstance(exc, (gateways.Unreachable, gateways.OutboundBlocked)):
            target = "api_url"
        elif field == "token" and isinstance(exc, gateways.TLSFailure):
            target = "ca_data"
        raise DomainError(exc.message, field=target, code=exc.code) from None
    return Probe(server_version=str(version.get("gitVersion") or ""), missing_optional=optional)


def build_credentials(
    *,
    auth_mode: str,
    api_url: str = "",
    token: str = "",
    ca_data: str = "",
    kubeconfig: str = "",
    context: str = "",
    allow_insecure: bool = False,
) -> tuple[creds.Credentials, str, str]:
    """(credentials, the field to blame for connection problems, the kubeconfig context used).

    Rule: the API server's address must pass the outbound policy (:mod:`apps.core.outbound`), checked here on
    the field it came from and again by the gateway whenever it connects."""
    if auth_mode == AuthMode.KUBECONFIG:
        if not kubeconfig.strip():
            raise DomainError("upload a kubeconfig", field="kubeconfig")
        credentials, chosen = creds.from_kubeconfig(kubeconfig, context=context, allow_insecure=allow_insecure)
        outbound.check_outbound_url(credentials.server, field="kubeconfig")
        return credentials, "kubeconfig", chosen
    if auth_mode == AuthMode.TOKEN:
        credentials = creds.from_token(server=api_url, token=token, ca_data=ca_data, allow_insecure=allow_insecure)
        outbound.check_outbound_url(credentials.server, field="api_url")
        return credentials, "token", ""
    if auth_mode == AuthMode.IN_CLUSTER:
        return creds.in_cluster(), "auth_mode", ""
    raise DomainError(f"unknown auth mode {auth_mode!r}; one of {', '.join(AuthMode.values)}", field="auth_mode")


def _scope(cluster: Cluster) -> dict[str, str]:
    return {"cluster": str(cluster.pk)}


def _check_in_cluster(auth_mode: str, cluster: Cluster | None) -> None:
    """Rule: registering a cluster in in-cluster mode, or switching one to it, is for global admins: it lends
    ICC's own ServiceAccount (its rights in ICC's cluster) to whoever administers that cluster entry. A call
    outside any request (the shell, a task) is trusted."""
    if auth_mode != AuthMode.IN_CLUSTER or (cluster is not None and cluster.auth_mode == AuthMode.IN_CLUSTER):
        return
    from apps.core import context
    from apps.core.access import GLOBAL, Action, can_at

    user = context.current().user
    if user is not None and not can_at(user, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError(
            "in-cluster mode uses ICC's own ServiceAccount: only a global admin may choose it", field="auth_mode"
        )


def edit_connection(cluster: Cluster, values: dict[str, Any]) -> dict[str, Any]:
    """The connection of an edited cluster, from the connection fields given (``build_credentials`` keywords).

    Rules: the address is kept unless a new one is given. The stored token is reused only when the address,
    the mode and the way the server is verified stay as they are (rotate a token without resending the CA
    bundle): a stored token is never sent to an address it was not registered for, nor to one verified
    differently, so a new ``api_url``, ``auth_mode``, CA bundle or ``allow_insecure`` needs the token again
    (400 naming ``token``); a kubeconfig cluster needs its kubeconfig again for any change, a context included
    (400 naming ``kubeconfig``)."""
    auth_mode = values.get("auth_mode") or cluster.auth_mode
    connection: dict[str, Any] = {
        "auth_mode": auth_mode,
        "allow_insecure": values.get("allow_insecure", cluster.allow_insecure),
        **{name: values[name] for name in ("api_url", "token", "ca_data", "kubeconfig", "context") if name in values},
    }
    if auth_mode != AuthMode.TOKEN:
        return connection
    connection.setdefault("api_url", cluster.api_url)
    if cluster.auth_mode != AuthMode.TOKEN:
        if not str(connection.get("token") or "").strip():
            raise DomainError(
                f"a change from {cluster.auth_mode} to token needs the token: stored credentials are never reused "
                "for another mode",
                field="token",
            )
        return connection
    stored = creds.Credentials.from_dict(decrypt(bytes(cluster.credentials)))
    connection.setdefault("ca_data", stored.ca_data)  # a CA bundle is public: kept unless replaced
    if str(connection.get("token") or "").strip():
        return connection  # a token given now: the stored one is not used
    changed = ""
    if not _same_address(str(connection["api_url"]), cluster.api_url):
        changed = "a new API URL"
    elif "ca_data" in values and str(values["ca_data"] or "").strip() != stored.ca_data.strip():
        changed = "a new CA bundle"
    elif bool(connection["allow_insecure"]) and not cluster.allow_insecure:
        changed = "allowing an insecure connection"
    if changed:
        raise DomainError(
            f"{changed} needs the token again: stored credentials are never sent to an address they were not "
            "registered for, nor verified differently",
            field="token",
        )
    connection["token"] = stored.token
    return connection


def _same_address(given: str, stored: str) -> bool:
    return given.strip().rstrip("/") == stored.strip().rstrip("/")


def _check(by: Any, action: str, obj: Any, what: str) -> None:
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
    _check(by, Action.CONFIGURE, None, "registering a cluster")
    name = (name or "").strip()
    if Cluster.objects.filter(name=name).exists():
        raise ConflictError(f"a cluster named {name!r} already exists", field="name")
    _check_in_cluster(str(connection.get("auth_mode") or ""), None)
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
    _check(by, Action.CONFIGURE, cluster, "changing this cluster")
    changes: dict[str, Any] = {}
    probe_result = None
    new_credentials = None
    context = cluster.kubeconfig_context
    if connection:
        _check_in_cluster(str(connection.get("auth_mode") or ""), cluster)
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
    _check(by, Action.CONFIGURE, cluster, "pausing or resuming this cluster")
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
    _check(by, Action.CONFIGURE, cluster, "removing this cluster")
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


# --- actions on workloads and pods ----------------------------------------------------------------------


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("say why (it goes into the audit trail)", field="reason")
    if len(reason) > 500:
        raise DomainError("at most 500 characters", field="reason")
    return reason


def _workload_scope(workload: Workload) -> dict[str, str]:
    return {
        "cluster": str(workload.cluster_id),
        "namespace": workload.namespace,
        "application": workload.application.name,
    }


def workload_scale(
    workload: Workload, *, replicas: int, reason: str, resource_version: str = "", by: Any = None
) -> dict[str, Any]:
    """Set a workload's replicas through the scale subresource with a resourceVersion precondition (the
    caller's, or the one just read): a concurrent change answers 409 instead of being overwritten.
    Rule: operators of the workload (act) scale it."""
    _check(by, Action.ACT, workload, "scaling this workload")
    reason = _reason(reason)
    if workload.kind == "DaemonSet":
        raise DomainError("a DaemonSet runs one pod per node; it cannot be scaled", field="replicas")
    if not isinstance(replicas, int) or replicas < 0 or replicas > 10000:
        raise DomainError("a whole number from 0 to 10000", field="replicas")
    gateway = gateways.for_cluster(workload.cluster)
    path = workload_path(workload.kind, workload.namespace, workload.name)
    current = gateway.get_scale(path)
    previous = int((current.get("spec") or {}).get("replicas") or 0)
    precondition = resource_version or str((current.get("metadata") or {}).get("resourceVersion") or "")
    outcome = "success"
    try:
        result = gateway.put_scale(path, current, replicas, precondition)
    except gateways.Conflict:
        outcome = "failure"
        raise ConflictError(
            f"{workload} changed since resourceVersion {precondition}; read it again and retry",
            field="resource_version",
        ) from None
    finally:
        with transaction.atomic():
            audit_record(
                action="clusters.workload.scale",
                target=workload,
                outcome=outcome,
                message=reason,
                changes={"replicas": [previous, replicas]},
                metadata={"resource_version": precondition},
                scope=_workload_scope(workload),
            )
    return {"replicas": replicas, "previous": previous, "resource_version": result["metadata"]["resourceVersion"]}


def workload_restart(workload: Workload, *, reason: str, by: Any = None) -> dict[str, Any]:
    """A rollout restart, as ``kubectl rollout restart`` does: stamp the pod template with the time (act)."""
    _check(by, Action.ACT, workload, "restarting this workload")
    reason = _reason(reason)
    gateway = gateways.for_cluster(workload.cluster)
    stamp = timezone.now().isoformat()
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    result = gateway.patch(workload_path(workload.kind, workload.namespace, workload.name), patch)
    with transaction.atomic():
        audit_record(
            action="clusters.workload.restart",
            target=workload,
            message=reason,
            changes={"restartedAt": [None, stamp]},
            scope=_workload_scope(workload),
        )
    return {"restarted_at": stamp, "generation": (result.get("metadata") or {}).get("generation")}


def pod_logs(pod: Pod, *, container: str = "", tail_lines: int = 100) -> list[str]:
    """The last ``tail_lines`` lines of a container's log (reading logs is audited: they may hold data)."""
    names = [c.get("name") for c in pod.containers]
    if container and container not in names:
        raise DomainError(
            f"no container {container!r} in {pod}; it has {', '.join(map(str, names))}", field="container"
        )
    if not 1 <= tail_lines <= 10000:
        raise DomainError("from 1 to 10000", field="tail_lines")
    container = container or str(names[0] if names else "")
    response = gateways.for_cluster(pod.cluster).pod_log(
        pod.namespace, pod.name, container=container, tail_lines=tail_lines
    )
    try:
        text = response.read().decode(errors="replace")
    finally:
        response.release_conn()
    with transaction.atomic():
        audit_record(
            action="clusters.pod.logs",
            target=pod,
            metadata={"container": container, "tail_lines": tail_lines},
            scope={
                "cluster": str(pod.cluster_id),
                "namespace": pod.namespace,
                "application": pod.application.name if pod.application else "",
            },
        )
    return text.splitlines()
