"""Compliance policies, where they apply, and the current result of every check on every observed workload.

A ``Policy`` is a built-in set of checks (Pod Security Standards baseline or restricted, best practices) or a
custom one in CEL. A ``Binding`` applies a policy (or one check of it) at a scope — global, a cluster, a
namespace or an application, compared whole as access control compares scopes — in a mode: ``audit`` records,
``warn`` also warns at admission, ``enforce`` denies at admission. A ``Result`` is one check's current verdict on
one workload (unique per workload and check), with when it last changed.
"""

from __future__ import annotations

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


class Result(models.Model):
    id = models.BigAutoField(primary_key=True)
    workload = models.ForeignKey("clusters.Workload", on_delete=models.CASCADE, related_name="compliance_results")
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
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.AUDIT)  # the strictest binding's
    since = models.DateTimeField()  # when the status last changed
    evaluated_at = models.DateTimeField()

    class Meta:
        ordering = ("cluster_id", "namespace", "workload_id", "check_id")
        constraints = [models.UniqueConstraint(fields=("workload", "check_id"), name="compliance_result_unique")]
        indexes = [models.Index(fields=("status", "severity"), name="compliance_result_status_idx")]

    def __str__(self) -> str:
        return f"{self.workload_id} {self.check_id}: {self.status}"
