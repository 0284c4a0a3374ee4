"""Writes on clusters and actions on their workloads. Each one is audited in the same transaction.

Registration tests the connection first and says precisely what is wrong: unreachable, TLS verification
failed, 401 (credentials rejected) or 403 naming the verbs and resources ICC lacks (asked of the API server
with SelfSubjectAccessReview). Credentials are encrypted before they touch the database and never appear in
answers, logs or audit events (the audit records only *that* they changed).

``connection`` tests and builds connections, ``clusters`` writes clusters, ``workloads`` acts on workloads and
pods, ``pods`` deletes pods; the names other modules use are importable from here.
"""

from __future__ import annotations

from apps.clusters.services.clusters import (
    cluster_delete,
    cluster_register,
    cluster_set_paused,
    cluster_sync_request,
    cluster_update,
    rotate_credentials,
    schedule_sync,
)
from apps.clusters.services.connection import (
    OPTIONAL,
    REQUIRED,
    Permission,
    Probe,
    build_credentials,
    edit_connection,
    probe,
)
from apps.clusters.services.pods import pod_delete
from apps.clusters.services.workloads import pod_logs, workload_audit_scope, workload_restart, workload_scale

__all__ = [
    "OPTIONAL",
    "REQUIRED",
    "Permission",
    "Probe",
    "build_credentials",
    "cluster_delete",
    "cluster_register",
    "cluster_set_paused",
    "cluster_sync_request",
    "cluster_update",
    "edit_connection",
    "pod_delete",
    "pod_logs",
    "probe",
    "rotate_credentials",
    "schedule_sync",
    "workload_audit_scope",
    "workload_restart",
    "workload_scale",
]
