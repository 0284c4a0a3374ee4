"""Pod Security Standards, restricted level: the checks upstream adds to (or tightens over) baseline.

A restricted check that ``overrides`` a baseline one replaces it when the restricted policy runs, as upstream's
``OverrideCheckIDs`` do. Windows pods (``spec.os.name: windows``) are exempt where upstream exempts them (1.25+), and
pods in a user namespace (``hostUsers: false``) where upstream relaxes (1.35+).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.compliance.checks.base import (
    POLICY_RESTRICTED,
    Outcome,
    Severity,
    builtin_check,
    failed,
    passed,
)
from apps.compliance.checks.pss_baseline import CATEGORY, proc_mount_faults, seccomp_explicit_faults, seccomp_fix
from apps.compliance.checks.workload import ContainerRef, Workload, as_dict, as_list, describe, quote_all

# Inline volume sources the restricted level allows; everything else (hostPath, nfs, gitRepo, ...) is refused.
VOLUME_SOURCES_ALLOWED = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
CAPABILITY_ALL = "ALL"
CAPABILITY_NET_BIND_SERVICE = "NET_BIND_SERVICE"

Params = Mapping[str, Any]


def _volume_source(volume: dict[str, Any]) -> str | None:
    """The volume's source key; ``None`` when it names none (the API server defaults that to emptyDir)."""
    sources = [key for key, value in volume.items() if key != "name" and value is not None]
    allowed = [key for key in sources if key in VOLUME_SOURCES_ALLOWED]
    if allowed:
        return allowed[0]
    return sources[0] if sources else None


@builtin_check(
    id="pss.restricted.volume-types",
    title="Restricted volume types",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_RESTRICTED,
    upstream_id="restrictedVolumes",
    overrides=("hostPathVolumes",),
    description="Only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and "
    "secret volumes are allowed; node and network filesystems are not.",
    remediation="Move data to a PersistentVolumeClaim (backed by any storage class) or a CSI volume.",
)
def volume_types(workload: Workload, params: Params) -> Outcome:
    bad: list[str] = []
    types: set[str] = set()
    for volume in (as_dict(v) for v in as_list(workload.pod_spec.get("volumes"))):
        source = _volume_source(volume)
        if source is not None and source not in VOLUME_SOURCES_ALLOWED:
            bad.append(str(volume.get("name", "")))
            types.add(source)
    if not bad:
        return passed("only allowed volume types")
    noun = "volume" if len(bad) == 1 else "volumes"
    return failed(f"{noun} {quote_all(bad)} use restricted volume types {quote_all(sorted(types))}")


@builtin_check(
    id="pss.restricted.privilege-escalation",
    title="Privilege escalation",
    severity=Severity.HIGH,
    category=CATEGORY,
    policy=POLICY_RESTRICTED,
    upstream_id="allowPrivilegeEscalation",
    description="Without allowPrivilegeEscalation=false a process can gain privileges (setuid binaries, file caps).",
    remediation="Set securityContext.allowPrivilegeEscalation: false on every container.",
)
def privilege_escalation(workload: Workload, params: Params) -> Outcome:
    if workload.is_windows:
        return passed("Windows pods are exempt")
    bad = [c for c in workload.containers() if c.security_context.get("allowPrivilegeEscalation") is not False]
    if not bad:
        return passed("every container sets allowPrivilegeEscalation=false")
    patch = workload.patch()
    for ref in bad:
        patch.set((*ref.path, "securityContext", "allowPrivilegeEscalation"), False)
    return failed(f"{describe(bad)} must set securityContext.allowPrivilegeEscalation=false", patch.build())


@builtin_check(
    id="pss.restricted.run-as-non-root",
    title="Run as non-root",
    severity=Severity.HIGH,
    category=CATEGORY,
    policy=POLICY_RESTRICTED,
    upstream_id="runAsNonRoot",
    description="Containers must be required to run as a non-root user: runAsNonRoot=true at pod level, or on "
    "every container that does not inherit it.",
    remediation="Set spec.securityContext.runAsNonRoot: true (and remove runAsNonRoot: false from containers); "
    "the image must then declare a numeric non-zero USER, or set runAsUser.",
)
def run_as_non_root(workload: Workload, params: Params) -> Outcome:
    if workload.in_user_namespace:
        return passed("the pod runs in a user namespace (hostUsers: false)")
    pod_value = workload.pod_security_context.get("runAsNonRoot")
    pod_false = pod_value is False
    pod_true = pod_value is True
    explicit: list[ContainerRef] = []
    implicit: list[ContainerRef] = []
    for ref in workload.containers():
        value = ref.security_context.get("runAsNonRoot")
        if value is not None:
            if value is not True:
                explicit.append(ref)
        elif not pod_true:
            implicit.append(ref)
    patch = workload.patch()
    if pod_false or implicit:
        patch.set((*workload.pod_spec_path, "securityContext", "runAsNonRoot"), True)
    for ref in explicit:
        patch.set((*ref.path, "securityContext", "runAsNonRoot"), True)
    if pod_false or explicit:
        setters = " and ".join((["pod"] if pod_false else []) + ([describe(explicit)] if explicit else []))
        return failed(f"{setters} must not set securityContext.runAsNonRoot=false", patch.build())
    if implicit:
        return failed(f"pod or {describe(implicit)} must set securityContext.runAsNonRoot=true", patch.build())
    return passed("the pod or every container sets runAsNonRoot=true")


def _is_root(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


@builtin_check(
    id="pss.restricted.run-as-user",
    title="Run as user 0",
    severity=Severity.HIGH,
    category=CATEGORY,
    policy=POLICY_RESTRICTED,
    upstream_id="runAsUser",
    description="Neither the pod nor a container may set runAsUser: 0 (root).",
    remediation="Set runAsUser to a non-zero UID (or remove it and let the image's non-root USER apply).",
)
def run_as_user(workload: Workload, params: Params) -> Outcome:
    if workload.in_user_namespace:
        return passed("the pod runs in a user namespace (hostUsers: false)")
    pod_bad = _is_root(workload.pod_security_context.get("runAsUser"))
    bad = [c for c in workload.containers() if _is_root(c.security_context.get("runAsUser"))]
    if not (pod_bad or bad):
        return passed("no runAsUser=0")
    setters = " and ".join((["pod"] if pod_bad else []) + ([describe(bad)] if bad else []))
    # Which UID the image can run as is the owner's decision: no fix is guessed.
    return failed(f"{setters} must not set runAsUser=0")


@builtin_check(
    id="pss.restricted.seccomp",
    title="Seccomp profile required",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_RESTRICTED,
    upstream_id="seccompProfile_restricted",
    overrides=("seccompProfile_baseline",),
    description="A seccomp profile (RuntimeDefault or Localhost) must be set at pod level, or on every container "
    "that does not inherit it.",
    remediation="Set spec.securityContext.seccompProfile.type: RuntimeDefault.",
)
def seccomp_restricted(workload: Workload, params: Params) -> Outcome:
    if workload.is_windows:
        return passed("Windows pods are exempt")
    pod_bad, explicit, values = seccomp_explicit_faults(workload)
    pod_set = workload.pod_security_context.get("seccompProfile") is not None and not pod_bad
    implicit = [c for c in workload.containers() if c.security_context.get("seccompProfile") is None and not pod_set]
    if not (pod_bad or explicit or implicit):
        return passed("a RuntimeDefault or Localhost seccomp profile applies to every container")
    # One pod-level RuntimeDefault covers every container that does not set its own profile.
    fix = seccomp_fix(workload, pod=pod_bad or bool(implicit), containers=explicit)
    if pod_bad or explicit:
        setters = " and ".join((["pod"] if pod_bad else []) + ([describe(explicit)] if explicit else []))
        return failed(f"{setters} must not set securityContext.seccompProfile.type to {quote_all(sorted(values))}", fix)
    return failed(
        f'pod or {describe(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        fix,
    )


@builtin_check(
    id="pss.restricted.capabilities",
    title="Drop ALL capabilities",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_RESTRICTED,
    upstream_id="capabilities_restricted",
    overrides=("capabilities_baseline",),
    description='Every container must drop "ALL" capabilities and may add back only NET_BIND_SERVICE.',
    remediation='Set securityContext.capabilities.drop: ["ALL"] on every container, and add at most '
    '["NET_BIND_SERVICE"].',
)
def capabilities_restricted(workload: Workload, params: Params) -> Outcome:
    if workload.is_windows:
        return passed("Windows pods are exempt")
    missing_drop: list[ContainerRef] = []
    adding: list[ContainerRef] = []
    forbidden: set[str] = set()
    patch = workload.patch()
    for ref in workload.containers():
        capabilities = as_dict(ref.security_context.get("capabilities"))
        dropped = as_list(capabilities.get("drop"))
        added = as_list(capabilities.get("add"))
        if CAPABILITY_ALL not in dropped:
            missing_drop.append(ref)
            patch.set((*ref.path, "securityContext", "capabilities", "drop"), [*dropped, CAPABILITY_ALL])
        extra = [cap for cap in added if cap != CAPABILITY_NET_BIND_SERVICE]
        if extra:
            adding.append(ref)
            forbidden.update(map(str, extra))
            kept = [cap for cap in added if cap == CAPABILITY_NET_BIND_SERVICE]
            patch.set((*ref.path, "securityContext", "capabilities", "add"), kept)
    details = []
    if missing_drop:
        details.append(f'{describe(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(
            f"{describe(adding)} must not include {quote_all(sorted(forbidden))} in securityContext.capabilities.add"
        )
    if details:
        return failed("; ".join(details), patch.build())
    return passed('every container drops "ALL" and adds at most NET_BIND_SERVICE')


@builtin_check(
    id="pss.restricted.proc-mount",
    title="/proc mount type (user namespaces too)",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_RESTRICTED,
    upstream_id="procMount_restricted",
    overrides=("procMount",),
    description="The restricted level keeps the default /proc masks even for pods in a user namespace.",
    remediation='Remove securityContext.procMount or set it to "Default".',
)
def proc_mount_restricted(workload: Workload, params: Params) -> Outcome:
    return proc_mount_faults(workload)
