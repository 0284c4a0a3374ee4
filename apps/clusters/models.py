"""Clusters and what ICC observes in them.

``Cluster`` holds where and how to reach a Kubernetes API server (credentials encrypted, see
:mod:`apps.clusters.crypto`). Everything else here is *observed state*, written only by reconciliation
(:mod:`apps.clusters.sync`): full sync and the watcher. Rows are keyed by (cluster, namespace, name)
like the objects they mirror and carry the object's ``uid`` and ``resourceVersion``.

An ``Application`` groups workloads by the recommended label ``app.kubernetes.io/part-of``, else
``app.kubernetes.io/name``, else the workload's own name; it is what scaling, cron, compliance and traffic
attach to, so it outlives its workloads (``active`` turns false when none is left).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import BaseModel


class AuthMode(models.TextChoices):
    KUBECONFIG = "kubeconfig", "Kubeconfig"
    TOKEN = "token", "Bearer token and CA bundle"
    IN_CLUSTER = "in_cluster", "In-cluster (ICC's own ServiceAccount)"


class ClusterStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONNECTED = "connected", "Connected"
    DEGRADED = "degraded", "Degraded"
    UNREACHABLE = "unreachable", "Unreachable"
    PAUSED = "paused", "Paused"


class Cluster(BaseModel):
    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=500, blank=True)
    api_url = models.CharField(max_length=500)
    auth_mode = models.CharField(max_length=16, choices=AuthMode.choices)
    kubeconfig_context = models.CharField(max_length=253, blank=True)
    # Fernet token of the JSON credentials (token, CA, client certificate); never leaves the server.
    credentials = models.BinaryField(editable=False)
    allow_insecure = models.BooleanField(
        default=False, help_text="Consent to a plain-HTTP API server or to skipping TLS verification."
    )
    paused = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=ClusterStatus.choices, default=ClusterStatus.PENDING)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    server_version = models.CharField(max_length=64, blank=True)
    last_full_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    sync_interval_seconds = models.PositiveIntegerField(default=300)
    last_event_at = models.DateTimeField(null=True, blank=True)
    # Permissions ICC lacks for actions (scale, restart, logs, TokenReview); reading is required to register.
    missing_permissions = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Namespace(BaseModel):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="namespaces")
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    phase = models.CharField(max_length=32, blank=True)
    labels = models.JSONField(default=dict)
    resource_version = models.CharField(max_length=32, blank=True)
    k8s_created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("cluster_id", "name")
        constraints = [models.UniqueConstraint(fields=("cluster", "name"), name="clusters_namespace_unique")]

    def __str__(self) -> str:
        return self.name


class Node(BaseModel):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    capacity = models.JSONField(default=dict)
    allocatable = models.JSONField(default=dict)
    conditions = models.JSONField(default=list)
    ready = models.BooleanField(default=False)
    cordoned = models.BooleanField(default=False)
    kubelet_version = models.CharField(max_length=64, blank=True)
    resource_version = models.CharField(max_length=32, blank=True)
    k8s_created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("cluster_id", "name")
        constraints = [models.UniqueConstraint(fields=("cluster", "name"), name="clusters_node_unique")]

    def __str__(self) -> str:
        return self.name


class Application(BaseModel):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="applications")
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    label_source = models.CharField(max_length=64, blank=True)  # which label named it (or "workload")
    active = models.BooleanField(default=True)  # false once no workload carries it any more

    class Meta:
        ordering = ("cluster_id", "namespace", "name")
        constraints = [
            models.UniqueConstraint(fields=("cluster", "namespace", "name"), name="clusters_application_unique")
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class WorkloadKind(models.TextChoices):
    DEPLOYMENT = "Deployment", "Deployment"
    STATEFULSET = "StatefulSet", "StatefulSet"
    DAEMONSET = "DaemonSet", "DaemonSet"


class RolloutState(models.TextChoices):
    COMPLETE = "complete", "Complete"
    PROGRESSING = "progressing", "Progressing"
    FAILED = "failed", "Failed"
    PAUSED = "paused", "Paused"
    UNKNOWN = "unknown", "Unknown"


class Workload(BaseModel):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="workloads")
    namespace = models.CharField(max_length=253)
    kind = models.CharField(max_length=16, choices=WorkloadKind.choices)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="workloads")
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    selector = models.JSONField(default=dict)
    desired_replicas = models.IntegerField(default=0)
    current_replicas = models.IntegerField(default=0)
    ready_replicas = models.IntegerField(default=0)
    available_replicas = models.IntegerField(default=0)
    updated_replicas = models.IntegerField(default=0)
    images = models.JSONField(default=list)  # [{"container": ..., "image": ...}]
    # spec.template: {"metadata": {"labels", "annotations"}, "spec": the pod spec}, what compliance checks read;
    # {} with pod_template_oversized when its JSON exceeds kinds.POD_TEMPLATE_MAX_BYTES.
    pod_template = models.JSONField(default=dict)
    pod_template_oversized = models.BooleanField(default=False)
    conditions = models.JSONField(default=list)
    generation = models.BigIntegerField(default=0)
    observed_generation = models.BigIntegerField(default=0)
    rollout_state = models.CharField(max_length=16, choices=RolloutState.choices, default=RolloutState.UNKNOWN)
    revision = models.CharField(max_length=64, blank=True)
    resource_version = models.CharField(max_length=32, blank=True)
    k8s_created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("cluster_id", "namespace", "kind", "name")
        constraints = [
            models.UniqueConstraint(fields=("cluster", "kind", "namespace", "name"), name="clusters_workload_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class Pod(BaseModel):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="pods")
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    workload = models.ForeignKey(Workload, null=True, blank=True, on_delete=models.SET_NULL, related_name="pods")
    application = models.ForeignKey(Application, null=True, blank=True, on_delete=models.SET_NULL, related_name="pods")
    owner_kind = models.CharField(max_length=64, blank=True)
    owner_name = models.CharField(max_length=253, blank=True)
    labels = models.JSONField(default=dict)
    node_name = models.CharField(max_length=253, blank=True)
    phase = models.CharField(max_length=16, blank=True)
    ready = models.BooleanField(default=False)
    restarts = models.IntegerField(default=0)
    reason = models.CharField(max_length=64, blank=True)  # the most telling problem: CrashLoopBackOff, OOMKilled
    containers = models.JSONField(default=list)  # [{"name","image","ready","state","reason","restarts","last_reason"}]
    pod_ip = models.CharField(max_length=64, blank=True)
    service_account = models.CharField(max_length=253, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    deleting = models.BooleanField(default=False)
    resource_version = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ("cluster_id", "namespace", "name")
        constraints = [models.UniqueConstraint(fields=("cluster", "namespace", "name"), name="clusters_pod_unique")]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class WarningEvent(BaseModel):
    """A recent Kubernetes Warning event (capped per cluster, newest kept)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="warning_events")
    namespace = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    object_kind = models.CharField(max_length=64, blank=True)
    object_name = models.CharField(max_length=253, blank=True)
    application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.SET_NULL, related_name="warning_events"
    )
    reason = models.CharField(max_length=128, blank=True)
    message = models.TextField(blank=True)
    count = models.IntegerField(default=1)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True, db_index=True)
    resource_version = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ("-last_seen", "-id")
        constraints = [models.UniqueConstraint(fields=("cluster", "uid"), name="clusters_event_unique")]

    def __str__(self) -> str:
        return f"{self.reason} {self.object_kind}/{self.object_name}"


class JobState(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class KubeJob(BaseModel):
    """A batch/v1 Job that ICC created (labelled ``app.kubernetes.io/managed-by=icc``, the only Jobs observed).

    ``state`` is derived from the Job's conditions (see :func:`apps.clusters.kinds.job_state`); a change of a row
    is announced after commit by :data:`apps.clusters.signals.job_observed`."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="kube_jobs")
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    active = models.IntegerField(default=0)  # pods running now
    succeeded = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    conditions = models.JSONField(default=list)
    start_time = models.DateTimeField(null=True, blank=True)
    completion_time = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.RUNNING)
    failure_reason = models.CharField(max_length=64, blank=True)  # BackoffLimitExceeded, DeadlineExceeded
    resource_version = models.CharField(max_length=32, blank=True)
    k8s_created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("cluster_id", "namespace", "name")
        constraints = [models.UniqueConstraint(fields=("cluster", "namespace", "name"), name="clusters_kubejob_unique")]

    def __str__(self) -> str:
        return f"Job {self.namespace}/{self.name}"


class ApplicationVersion(BaseModel):
    """One rollout of an application: a workload's images or revision changed (or first seen)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="versions")
    workload_kind = models.CharField(max_length=16)
    workload_name = models.CharField(max_length=253)
    revision = models.CharField(max_length=64, blank=True)
    images = models.JSONField(default=list)
    changes = models.JSONField(default=list)  # [{"container", "from", "to"}]; empty for the first version
    observed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("-observed_at", "-id")

    def __str__(self) -> str:
        return f"{self.workload_name} r{self.revision}"


class WatchLease(models.Model):
    """Who runs the watches of a cluster. Renewed by its holder; another watcher takes it once expired."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, primary_key=True, related_name="lease")
    holder = models.CharField(max_length=200)
    acquired_at = models.DateTimeField()
    renewed_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.cluster_id} held by {self.holder}"


class WatchState(models.Model):
    """Health of one watch stream (cluster x kind), written by its watcher."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="watch_states")
    kind = models.CharField(max_length=32)
    resource_version = models.CharField(max_length=32, blank=True)
    connected = models.BooleanField(default=False)
    last_message_at = models.DateTimeField(null=True, blank=True)
    events_applied = models.BigIntegerField(default=0)
    relists = models.IntegerField(default=0)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("cluster", "kind"), name="clusters_watchstate_unique")]

    def __str__(self) -> str:
        return f"{self.cluster_id}/{self.kind}"
