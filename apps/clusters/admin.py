"""Clusters in the admin: registration and credentials stay in the portal and API (where the connection is
tested and the secret is write-only); the admin edits a cluster's description and interval and shows the
observed objects read-only (reconciliation is their only writer)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.admin_mixins import AuditedModelAdmin, ReadOnlyAdmin
from apps.clusters import models as m


@admin.register(m.Cluster)
class ClusterAdmin(AuditedModelAdmin):
    list_display = ("name", "status", "api_url", "server_version", "last_full_sync_at", "paused")
    list_filter = ("status", "paused", "auth_mode")
    search_fields = ("name", "api_url", "description")
    fields = (
        "name",
        "description",
        "sync_interval_seconds",
        "api_url",
        "auth_mode",
        "kubeconfig_context",
        "allow_insecure",
        "paused",
        "status",
        "last_error",
        "server_version",
        "last_full_sync_at",
        "last_sync_duration_ms",
        "missing_permissions",
    )
    readonly_fields = tuple(f for f in fields if f not in ("description", "sync_interval_seconds"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # register in the portal or the API: the connection is tested first


@admin.register(m.Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = ("name", "namespace", "cluster", "active", "label_source")
    list_filter = ("active", "cluster")
    search_fields = ("name", "namespace")


@admin.register(m.Workload)
class WorkloadAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "namespace", "cluster", "desired_replicas", "ready_replicas", "rollout_state")
    list_filter = ("kind", "rollout_state", "cluster")
    search_fields = ("name", "namespace")
    list_select_related = ("cluster",)


@admin.register(m.Pod)
class PodAdmin(ReadOnlyAdmin):
    list_display = ("name", "namespace", "cluster", "phase", "ready", "restarts", "reason", "node_name")
    list_filter = ("phase", "ready", "cluster")
    search_fields = ("name", "namespace")
    list_select_related = ("cluster",)


@admin.register(m.Node)
class NodeAdmin(ReadOnlyAdmin):
    list_display = ("name", "cluster", "ready", "cordoned", "kubelet_version")
    list_filter = ("ready", "cordoned", "cluster")


@admin.register(m.Namespace)
class NamespaceAdmin(ReadOnlyAdmin):
    list_display = ("name", "cluster", "phase")
    list_filter = ("cluster",)
    search_fields = ("name",)


@admin.register(m.KubeJob)
class KubeJobAdmin(ReadOnlyAdmin):
    list_display = ("name", "namespace", "cluster", "state", "failure_reason", "active", "succeeded", "failed")
    list_filter = ("state", "cluster")
    search_fields = ("name", "namespace")
    list_select_related = ("cluster",)
