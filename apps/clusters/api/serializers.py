"""Serializers of the clusters API. Credentials are write-only: no read serializer has a field for them."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from apps.clusters.models import (
    Application,
    ApplicationVersion,
    AuthMode,
    Cluster,
    Namespace,
    Node,
    Pod,
    WarningEvent,
    WatchState,
    Workload,
)
from apps.core.api.serializers import StrictSerializer

CONNECTION_FIELDS = ("auth_mode", "api_url", "token", "ca_data", "kubeconfig", "context", "allow_insecure")


# --- clusters ---------------------------------------------------------------------------------------------


# Every observed object's rows start and end alike.
OBSERVED_HEAD = ("id", "cluster", "cluster_name")
OBSERVED_TAIL = ("resource_version", "k8s_created_at", "created_at", "updated_at")


class WatchStateSerializer(serializers.ModelSerializer):
    lag_seconds = serializers.SerializerMethodField(help_text="Seconds since the stream last said anything.")

    class Meta:
        model = WatchState
        fields = (
            "kind",
            "connected",
            "resource_version",
            "last_message_at",
            "lag_seconds",
            "events_applied",
            "relists",
            "last_error",
        )
        read_only_fields = fields

    def get_lag_seconds(self, obj: WatchState) -> float | None:
        if obj.last_message_at is None:
            return None
        return round((timezone.now() - obj.last_message_at).total_seconds(), 3)


class ClusterCountsSerializer(serializers.Serializer):
    """What the requester may see in the cluster (pods not being deleted, applications still active)."""

    nodes = serializers.IntegerField(source="node_count", read_only=True)
    namespaces = serializers.IntegerField(source="namespace_count", read_only=True)
    workloads = serializers.IntegerField(source="workload_count", read_only=True)
    pods = serializers.IntegerField(source="pod_count", read_only=True)
    applications = serializers.IntegerField(source="application_count", read_only=True)


class ClusterSerializer(serializers.ModelSerializer):
    context = serializers.CharField(source="kubeconfig_context", read_only=True)  # type: ignore[assignment]
    counts = ClusterCountsSerializer(source="*", read_only=True)
    watches = WatchStateSerializer(source="watch_states", many=True, read_only=True)

    class Meta:
        model = Cluster
        fields = (
            "id",
            "name",
            "description",
            "api_url",
            "auth_mode",
            "context",
            "allow_insecure",
            "paused",
            "status",
            "server_version",
            "last_error",
            "last_error_at",
            "last_full_sync_at",
            "last_sync_duration_ms",
            "sync_interval_seconds",
            "last_event_at",
            "missing_permissions",
            "counts",
            "watches",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ClusterConnectionSerializer(StrictSerializer):
    """How to reach the API server. The service checks the combination and names the field at fault."""

    auth_mode = serializers.ChoiceField(choices=AuthMode.choices)
    api_url = serializers.CharField(required=False, allow_blank=True, max_length=500, help_text="With auth_mode=token.")
    token = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=16384,
        style={"input_type": "password"},
        help_text="A bearer token (auth_mode=token). Write-only.",
    )
    ca_data = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=262144,
        help_text="PEM CA bundle verifying the API server (auth_mode=token). Write-only.",
    )
    kubeconfig = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=262144,
        error_messages={"max_length": "larger than 256 KiB; is this a kubeconfig?"},
        help_text="A flattened kubeconfig as text (auth_mode=kubeconfig; at most 256 KiB, no YAML anchors or "
        "aliases). Write-only.",
    )
    # DRF pops declared fields off the class, so this does not shadow Serializer.context.
    context = serializers.CharField(required=False, allow_blank=True, max_length=253)  # type: ignore[assignment]
    allow_insecure = serializers.BooleanField(
        required=False, help_text="Consent to plain HTTP or to an unverified server."
    )


class ClusterCreateSerializer(ClusterConnectionSerializer):
    name = serializers.SlugField(max_length=63)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    sync_interval_seconds = serializers.IntegerField(required=False, min_value=10, max_value=86400)


class ClusterUpdateSerializer(ClusterConnectionSerializer):
    """Every field optional; any connection field replaces the credentials (tested before they are kept)."""

    auth_mode = serializers.ChoiceField(choices=AuthMode.choices, required=False)
    name = serializers.SlugField(max_length=63, required=False, help_text="Cannot change (shown for clarity).")
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    sync_interval_seconds = serializers.IntegerField(required=False, min_value=10, max_value=86400)


class ClusterDeleteSerializer(StrictSerializer):
    confirm = serializers.CharField(
        required=False, allow_blank=True, max_length=63, default="", help_text="The cluster's name, repeated."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class QueuedSerializer(serializers.Serializer):
    status = serializers.CharField(read_only=True)
    cluster = serializers.IntegerField(read_only=True)


# --- observed state ---------------------------------------------------------------------------------------


class ObservedSerializer(serializers.ModelSerializer):
    """An object observed in a cluster: its rows name the cluster too (``OBSERVED_HEAD``)."""

    cluster_name = serializers.CharField(source="cluster.name", read_only=True)


class NamespaceSerializer(ObservedSerializer):
    workload_count = serializers.IntegerField(read_only=True)
    pod_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Namespace
        fields = (*OBSERVED_HEAD, "name", "uid", "phase", "labels", "workload_count", "pod_count", *OBSERVED_TAIL)
        read_only_fields = fields


class NodeSerializer(ObservedSerializer):
    pod_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Node
        fields = (
            *OBSERVED_HEAD,
            "name",
            "uid",
            "labels",
            "capacity",
            "allocatable",
            "conditions",
            "ready",
            "cordoned",
            "kubelet_version",
            "pod_count",
            *OBSERVED_TAIL,
        )
        read_only_fields = fields


class ApplicationSerializer(ObservedSerializer):
    workload_count = serializers.IntegerField(read_only=True)
    pod_count = serializers.IntegerField(read_only=True)
    ready_pod_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Application
        fields = (
            *OBSERVED_HEAD,
            "namespace",
            "name",
            "label_source",
            "active",
            "workload_count",
            "pod_count",
            "ready_pod_count",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ApplicationVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApplicationVersion
        fields = ("id", "application", "workload_kind", "workload_name", "revision", "images", "changes", "observed_at")
        read_only_fields = fields


class WorkloadSerializer(ObservedSerializer):
    application_name = serializers.CharField(source="application.name", read_only=True)
    pod_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Workload
        fields = (
            *OBSERVED_HEAD,
            "namespace",
            "kind",
            "name",
            "uid",
            "application",
            "application_name",
            "labels",
            "annotations",
            "selector",
            "desired_replicas",
            "current_replicas",
            "ready_replicas",
            "available_replicas",
            "updated_replicas",
            "images",
            "conditions",
            "generation",
            "observed_generation",
            "rollout_state",
            "revision",
            "pod_count",
            *OBSERVED_TAIL,
        )
        read_only_fields = fields


class ScaleSerializer(StrictSerializer):
    replicas = serializers.IntegerField(min_value=0, max_value=10000)
    reason = serializers.CharField(max_length=500, help_text="Why (kept in the audit trail).")
    resource_version = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text="Precondition: the scale's resourceVersion you read; a newer one answers 409.",
    )
    override = serializers.BooleanField(
        required=False, default=False, help_text="Act during a change freeze (needs override-freeze; audited)."
    )


class ScaleResultSerializer(serializers.Serializer):
    replicas = serializers.IntegerField(read_only=True)
    previous = serializers.IntegerField(read_only=True)
    resource_version = serializers.CharField(read_only=True)


class RestartSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, help_text="Why (kept in the audit trail).")
    override = serializers.BooleanField(
        required=False, default=False, help_text="Act during a change freeze (needs override-freeze; audited)."
    )


class RestartResultSerializer(serializers.Serializer):
    restarted_at = serializers.DateTimeField(read_only=True)
    generation = serializers.IntegerField(read_only=True, allow_null=True)


class PodDeleteSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, help_text="Why (kept in the audit trail).")
    override = serializers.BooleanField(
        required=False, default=False, help_text="Act during a change freeze (needs override-freeze; audited)."
    )


class PodDeleteResultSerializer(serializers.Serializer):
    pod = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    deleting = serializers.BooleanField(read_only=True)


class PodSerializer(ObservedSerializer):
    application_name = serializers.CharField(source="application.name", read_only=True, default=None)
    workload_name = serializers.CharField(source="workload.name", read_only=True, default=None)

    class Meta:
        model = Pod
        fields = (
            *OBSERVED_HEAD,
            "namespace",
            "name",
            "uid",
            "workload",
            "workload_name",
            "application",
            "application_name",
            "owner_kind",
            "owner_name",
            "labels",
            "node_name",
            "phase",
            "ready",
            "restarts",
            "reason",
            "containers",
            "pod_ip",
            "service_account",
            "started_at",
            "deleting",
            "resource_version",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class PodLogQuerySerializer(serializers.Serializer):
    container = serializers.CharField(required=False, allow_blank=True, max_length=253, default="")
    tail_lines = serializers.IntegerField(required=False, min_value=1, max_value=10000, default=100)


class PodLogSerializer(serializers.Serializer):
    pod = serializers.IntegerField(read_only=True)
    container = serializers.CharField(read_only=True)
    lines = serializers.ListField(child=serializers.CharField(), read_only=True)


class WarningEventSerializer(ObservedSerializer):
    application_name = serializers.CharField(source="application.name", read_only=True, default=None)

    class Meta:
        model = WarningEvent
        fields = (
            *OBSERVED_HEAD,
            "namespace",
            "name",
            "uid",
            "object_kind",
            "object_name",
            "application",
            "application_name",
            "reason",
            "message",
            "count",
            "first_seen",
            "last_seen",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


# --- machine identity -------------------------------------------------------------------------------------


class MachineIdentitySerializer(serializers.Serializer):
    cluster = serializers.IntegerField(read_only=True)
    cluster_name = serializers.CharField(read_only=True)
    namespace = serializers.CharField(read_only=True)
    service_account = serializers.CharField(read_only=True)
    username = serializers.CharField(read_only=True)
    pod = serializers.CharField(read_only=True, allow_blank=True)
    application = serializers.IntegerField(read_only=True)
    application_name = serializers.CharField(read_only=True)


def connection_given(data: dict[str, Any]) -> bool:
    return any(name in data for name in CONNECTION_FIELDS)
