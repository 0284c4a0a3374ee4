"""ICC's built-in compliance checks: Pod Security Standards (baseline, restricted) and best practices, pure Python.

Importing the package registers every check; :func:`evaluate` runs them over one Kubernetes object.
"""

from __future__ import annotations

from apps.compliance.checks import best_practice, pss_baseline, pss_restricted
from apps.compliance.checks.base import (
    POLICIES,
    POLICY_BASELINE,
    POLICY_BEST_PRACTICE,
    POLICY_RESTRICTED,
    Check,
    JsonPatch,
    Outcome,
    Parameter,
    Result,
    Severity,
    Status,
    check_get,
    checks_all,
    checks_for_policy,
)
from apps.compliance.checks.engine import evaluate
from apps.compliance.checks.workload import POD_TEMPLATE_PATHS, Workload, pointer, pointer_escape

# The Kubernetes release whose pod-security-admission checks the PSS controls follow.
PSS_UPSTREAM_VERSION = "1.36"

__all__ = [
    "POD_TEMPLATE_PATHS",
    "POLICIES",
    "POLICY_BASELINE",
    "POLICY_BEST_PRACTICE",
    "POLICY_RESTRICTED",
    "PSS_UPSTREAM_VERSION",
    "Check",
    "JsonPatch",
    "Outcome",
    "Parameter",
    "Result",
    "Severity",
    "Status",
    "Workload",
    "best_practice",
    "check_get",
    "checks_all",
    "checks_for_policy",
    "evaluate",
    "pointer",
    "pointer_escape",
    "pss_baseline",
    "pss_restricted",
]
