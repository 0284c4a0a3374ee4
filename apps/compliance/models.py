"""Compliance policies, where they apply, and the current result of every check on every observed workload.

A ``Policy`` is a built-in set of checks (Pod Security Standards baseline or restricted, best practices) or a
custom one in CEL. A ``Binding`` applies a policy (or one check of it) at a scope — global, a cluster, a
namespace or an application, compared whole as access control compares scopes — in a mode: ``audit`` records,
``warn`` also warns at admission, ``enforce`` denies at admission. A ``Result`` is one check's current verdict on
one workload (unique per workload and check), with when it last changed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from datetime import datetime

from django.conf import settings
from django.db import models

from apps.core.access import Scope, ScopeKind
from apps.core.models import BaseModel


class PolicyKind(models.TextChoices):
    BUILTIN = "builtin", "Built-in checks"
    CEL = "cel", "Custom (CEL)"


class Mode(models.TextChoices):
    AUDIT = "audit", "Audit (record)"
    WARN = "warn", "Warn (record and warn at admission)"
    ENFORCE = "enforce", "Enforce (deny at admission)"


class ResultStatus(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    SKIP = "skip", "Skip"
    ERROR = "error", "Error"
    EXCEPTED = "excepted", "Excepted (an approved exception covers a failure)"


class Policy(BaseModel):
    key = models.SlugField(max_length=100, unique=True)  # built-ins: pss-baseline, pss-restricted, best-practice
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=PolicyKind.choices, default=PolicyKind.CEL)
    severity = models.CharField(max_length=8, default="medium")  # custom policies' results
    # CEL: [{"expression", "message"?, "messageExpression"?}], [{"name", "expression"}], match rules
    validations = models.JSONField(default=list, blank=True)
    variables = models.JSONField(default=list, blank=True)
    match = models.JSONField(default=dict, blank=True)  # {"kinds": [...], "namespaces": [...], "labels": {...}}
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("key",)

    def __str__(self) -> str:
        return self.key


class Binding(BaseModel):
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="bindings")
    check_id = models.CharField(max_length=200, blank=True)  # empty: every check of the policy
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices, default=ScopeKind.GLOBAL)
    scope_cluster = models.CharField(max_length=32, blank=True)  # a cluster id, as access control's scopes
    scope_namespace = models.CharField(max_length=253, blank=True)
    scope_application = models.CharField(max_length=253, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.AUDIT)
    params = models.JSONField(default=dict, blank=True)  # {check id: {parameter: value}}
    enabled = models.BooleanField(default=True)
    # Admission answers an ``enforce`` binding as ``warn`` while a maintenance window covers the workload.
    warn_in_maintenance = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("policy_id", "id")

    def __str__(self) -> str:
        return f"{self.policy} @ {self.scope().label()} ({self.mode})"

    def scope(self) -> Scope:
        return Scope(self.scope_kind, self.scope_cluster, self.scope_namespace, self.scope_application)

    def applies_to(self, cluster_id: int, namespace: str, application: str) -> bool:
        """Rule: a binding applies where its scope covers the workload's coordinates (kind first, then the
        coordinates that kind uses — the same rule as access control)."""
        return self.scope().covers(str(cluster_id), namespace, application)


class ExceptionState(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    ACTIVE = "active", "Approved and in force"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class PolicyException(BaseModel):
    """An exception to a policy (or one check of it) at a scope, for the matching workloads: by name (shell
    patterns), by labels (all must match) and optionally by an image pattern (any container's image). It applies only
    once a second person with configure rights approved it, and only until it expires."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="exceptions")
    check_id = models.CharField(max_length=200, blank=True)  # empty: every check of the policy
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices, default=ScopeKind.GLOBAL)
    scope_cluster = models.CharField(max_length=32, blank=True)
    scope_namespace = models.CharField(max_length=253, blank=True)
    scope_application = models.CharField(max_length=253, blank=True)
    match_names = models.JSONField(default=list, blank=True)  # ["web-*"]; empty: any name
    match_labels = models.JSONField(default=dict, blank=True)  # {"team": "shop"}; empty: any labels
    image_pattern = models.CharField(max_length=300, blank=True)  # "registry.local/legacy/*"; empty: any image
    reason = models.TextField()
    owner = models.CharField(max_length=150)
    ticket_url = models.URLField(max_length=500, blank=True)
    expires_at = models.DateTimeField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("expires_at", "id")

    def __str__(self) -> str:
        return f"exception to {self.policy}{'/' + self.check_id if self.check_id else ''} @ {self.scope().label()}"

    def scope(self) -> Scope:
        return Scope(self.scope_kind, self.scope_cluster, self.scope_namespace, self.scope_application)

    def state_at(self, now: datetime) -> str:
        """Rule: revoked beats everything; unapproved is pending; approved applies until it expires."""
        if self.revoked_at is not None:
            return ExceptionState.REVOKED
        if self.expires_at <= now:
            return ExceptionState.EXPIRED
        return ExceptionState.ACTIVE if self.approved_at is not None else ExceptionState.PENDING

    def covers(
        self,
        *,
        check_id: str,
        policy: str,
        cluster_id: int,
        namespace: str,
        application: str,
        name: str,
        labels: dict[str, str],
        images: list[str],
    ) -> bool:
        """Rule: the exception's policy (and check, when it names one) and scope match, and so do the workload's
        name, labels and (with a pattern) one of its images."""
        if policy != self.policy.key or (self.check_id and self.check_id != check_id):
            return False
        if not self.scope().covers(str(cluster_id), namespace, application):
            return False
        if self.match_names and not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.match_names):
            return False
        if any(labels.get(key) != value for key, value in (self.match_labels or {}).items()):
            return False
        return not self.image_pattern or any(fnmatch.fnmatchcase(image, self.image_pattern) for image in images)


class Result(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique (workload, check_id) serves every lookup by workload (one index less for
    # every result a scan writes).
    workload = models.ForeignKey(
        "clusters.Workload", on_delete=models.CASCADE, related_name="compliance_results", db_index=False
    )
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="compliance_results")
    namespace = models.CharField(max_length=253)
    application = models.ForeignKey(
        "clusters.Application", null=True, on_delete=models.CASCADE, related_name="compliance_results"
    )
    policy = models.CharField(max_length=100)  # the policy's key
    check_id = models.CharField(max_length=200)
    severity = models.CharField(max_length=8)
    status = models.CharField(max_length=8, choices=ResultStatus.choices)
    message = models.CharField(max_length=1024, blank=True)
    fix = models.JSONField(null=True, blank=True)  # a JSON Patch against the workload, when one exists
    # Indexed only where set (see Meta): most results carry no exception, and a scan writes every result.
    exception = models.ForeignKey(
        PolicyException, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.AUDIT)  # the strictest binding's
    since = models.DateTimeField()  # when the status last changed
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ("cluster_id", "namespace", "workload_id", "check_id")
        constraints = [models.UniqueConstraint(fields=("workload", "check_id"), name="compliance_result_unique")]
        indexes = [
            models.Index(fields=("status", "severity"), name="compliance_result_status_idx"),
            models.Index(
                fields=("exception",), name="compliance_result_exc_idx", condition=models.Q(exception__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workload_id} {self.check_id}: {self.status}"


class FailurePolicy(models.TextChoices):
    IGNORE = "Ignore", "Fail open (admit when ICC cannot answer)"
    FAIL = "Fail", "Fail closed (deny when ICC cannot answer)"


class AdmissionWebhook(BaseModel):
    """How one cluster calls ICC's admission webhook: the generated ``ValidatingWebhookConfiguration``'s failure
    policy and timeout, and the generation of the secret path token (rotating it invalidates the old URL)."""

    cluster = models.OneToOneField("clusters.Cluster", on_delete=models.CASCADE, related_name="admission_webhook")
    failure_policy = models.CharField(max_length=8, choices=FailurePolicy.choices, default=FailurePolicy.IGNORE)
    timeout_seconds = models.PositiveSmallIntegerField(default=5)
    token_generation = models.PositiveIntegerField(default=1)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ("cluster_id",)

    def __str__(self) -> str:
        return f"admission webhook of {self.cluster_id}"

    def token(self) -> str:
        """Rule: the secret path token is derived from the secret key, the cluster and the generation (nothing
        stored to leak; rotating bumps the generation)."""
        message = f"compliance-admission:{self.cluster_id}:{self.token_generation}".encode()
        return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:40]


BUILTIN_POLICIES = (
    ("pss-baseline", "Pod Security Standards: baseline", "Prevents known privilege escalations (upstream baseline)."),
    ("pss-restricted", "Pod Security Standards: restricted", "Baseline plus current pod hardening best practice."),
    ("best-practice", "Best practices", "Requests and limits, probes, pinned images, registries, labels and more."),
)


def ensure_builtin_policies() -> None:
    """The built-in policies as rows (their checks live in apps.compliance.checks); nothing is bound."""
    for key, name, description in BUILTIN_POLICIES:
        Policy.objects.get_or_create(key=key, defaults={"name": name, "description": description, "kind": "builtin"})


class HistoryPoint(models.Model):
    """The counts of one scope's current results right after a scan: one row per cluster, namespace,
    application, policy and severity, stamped with the scan's time and the application's version then (its latest
    rollout), so trends and per-release comparisons are sums over these rows. Pruned after
    ``COMPLIANCE_HISTORY_DAYS``."""

    id = models.BigAutoField(primary_key=True)
    taken_at = models.DateTimeField()
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="+")
    namespace = models.CharField(max_length=253)
    # kept by name too: an application's history outlives the application row, and scopes compare names
    application = models.ForeignKey("clusters.Application", null=True, on_delete=models.SET_NULL, related_name="+")
    application_name = models.CharField(max_length=253, blank=True)
    version = models.ForeignKey("clusters.ApplicationVersion", null=True, on_delete=models.SET_NULL, related_name="+")
    policy = models.CharField(max_length=100)
    severity = models.CharField(max_length=8)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errored = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    excepted = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-taken_at", "id")
        indexes = [
            models.Index(fields=("taken_at",), name="compliance_history_taken_idx"),
            models.Index(fields=("application", "taken_at"), name="compliance_history_app_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M} {self.cluster_id}/{self.namespace} {self.policy}/{self.severity}"
