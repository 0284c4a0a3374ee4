"""Pod Security Standards, baseline level: one check per upstream pod-security-admission control.

Each function mirrors the newest version of the upstream check (k8s.io/pod-security-admission/policy, Kubernetes
1.36): the same fields, the same containers (init, regular and ephemeral, in that order), the same pod-level
versus container-level rules. Messages name each container at fault by its list and name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.compliance.checks.base import (
    POLICY_BASELINE,
    Outcome,
    Severity,
    builtin_check,
    failed,
    passed,
)
from apps.compliance.checks.workload import ContainerRef, Workload, as_dict, as_list, describe, quote_all

CATEGORY = "Pod Security Standards"
SECCOMP_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
# The capabilities a container runtime grants by default; adding anything else (NET_RAW included) is refused.
CAPABILITIES_ALLOWED = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
SELINUX_TYPES_ALLOWED = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# Namespaced, node-isolated sysctls: the 1.0 set plus the 1.27, 1.29 and 1.32 additions.
SYSCTLS_ALLOWED = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
HOST_NAMESPACE_FIELDS = ("hostNetwork", "hostPID", "hostIPC")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HOOKS = ("postStart", "preStop")
HANDLERS_WITH_HOST = ("httpGet", "tcpSocket")

Params = Mapping[str, Any]


def _setters(pod_bad: bool, containers: list[ContainerRef]) -> str:
    """``pod and container "app"``: who set the bad value, the way upstream phrases it."""
    parts = (["pod"] if pod_bad else []) + ([describe(containers)] if containers else [])
    return " and ".join(parts)


@builtin_check(
    id="pss.baseline.host-namespaces",
    title="Host namespaces",
    severity=Severity.HIGH,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="hostNamespaces",
    description="Sharing the host's network, PID or IPC namespace lets a pod see and reach the node's processes.",
    remediation="Remove spec.hostNetwork, spec.hostPID and spec.hostIPC from the pod template, or set them false.",
)
def host_namespaces(workload: Workload, params: Params) -> Outcome:
    spec = workload.pod_spec
    shared = [name for name in HOST_NAMESPACE_FIELDS if spec.get(name) is True]
    if not shared:
        return passed("the pod shares no host namespace")
    patch = workload.patch()
    for name in shared:
        patch.set((*workload.pod_spec_path, name), False)
    return failed("pod sets " + ", ".join(f"{name}=true" for name in shared), patch.build())


@builtin_check(
    id="pss.baseline.privileged",
    title="Privileged containers",
    severity=Severity.CRITICAL,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="privileged",
    description="A privileged container has every capability and the node's devices: it is root on the node.",
    remediation="Remove securityContext.privileged from every container, or set it false.",
)
def privileged(workload: Workload, params: Params) -> Outcome:
    bad = [c for c in workload.containers() if c.security_context.get("privileged") is True]
    if not bad:
        return passed("no container is privileged")
    patch = workload.patch()
    for ref in bad:
        patch.set((*ref.path, "securityContext", "privileged"), False)
    return failed(f"{describe(bad)} must not set securityContext.privileged=true", patch.build())


@builtin_check(
    id="pss.baseline.capabilities",
    title="Added capabilities",
    severity=Severity.HIGH,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="capabilities_baseline",
    description="Adding NET_RAW or a capability beyond the container runtime's default set widens the kernel surface.",
    remediation=(
        "Remove capabilities other than AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, "
        "NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID and SYS_CHROOT from securityContext.capabilities.add."
    ),
)
def capabilities_baseline(workload: Workload, params: Params) -> Outcome:
    bad: list[ContainerRef] = []
    forbidden: set[str] = set()
    patch = workload.patch()
    for ref in workload.containers():
        added = as_list(as_dict(ref.security_context.get("capabilities")).get("add"))
        extra = [cap for cap in added if cap not in CAPABILITIES_ALLOWED]
        if extra:
            bad.append(ref)
            forbidden.update(map(str, extra))
            kept = [cap for cap in added if cap in CAPABILITIES_ALLOWED]
            patch.set((*ref.path, "securityContext", "capabilities", "add"), kept)
    if not bad:
        return passed("no container adds a capability beyond the default set")
    return failed(
        f"{describe(bad)} must not include {quote_all(sorted(forbidden))} in securityContext.capabilities.add",
        patch.build(),
    )


@builtin_check(
    id="pss.baseline.host-path-volumes",
    title="HostPath volumes",
    severity=Severity.HIGH,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="hostPathVolumes",
    description="A hostPath volume mounts the node's filesystem into the pod.",
    remediation="Replace hostPath volumes with a PersistentVolumeClaim, emptyDir, configMap or secret volume.",
)
def host_path_volumes(workload: Workload, params: Params) -> Outcome:
    volumes = [as_dict(v) for v in as_list(workload.pod_spec.get("volumes"))]
    bad = [str(v.get("name", "")) for v in volumes if v.get("hostPath") is not None]
    if not bad:
        return passed("no hostPath volume")
    noun = "volume" if len(bad) == 1 else "volumes"
    # Dropping the volume would break its mounts: the fix is a design decision, so none is offered.
    return failed(f"{noun} {quote_all(bad)} use hostPath")


@builtin_check(
    id="pss.baseline.host-ports",
    title="Host ports",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="hostPorts",
    description="A hostPort binds the node's own address, bypassing network policy and limiting scheduling.",
    remediation="Remove hostPort from every container port; expose the pod through a Service instead.",
)
def host_ports(workload: Workload, params: Params) -> Outcome:
    bad: list[ContainerRef] = []
    ports_used: set[int] = set()
    patch = workload.patch()
    for ref in workload.containers():
        ports = [as_dict(p) for p in as_list(ref.spec.get("ports"))]
        used = [p["hostPort"] for p in ports if p.get("hostPort") not in (None, 0)]
        if used:
            bad.append(ref)
            ports_used.update(int(port) for port in used)
            cleaned = [{k: v for k, v in p.items() if k != "hostPort"} for p in ports]
            patch.set((*ref.path, "ports"), cleaned)
    if not bad:
        return passed("no container uses a hostPort")
    listed = ", ".join(str(port) for port in sorted(ports_used))
    return failed(f"{describe(bad)} use hostPort {listed}", patch.build())


@builtin_check(
    id="pss.baseline.apparmor",
    title="AppArmor profile",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="appArmorProfile",
    description="Overriding or disabling the default AppArmor profile removes a layer of confinement.",
    remediation=(
        "Set securityContext.appArmorProfile.type to RuntimeDefault or Localhost (or leave it unset) at pod and "
        "container level, and give container.apparmor.security.beta.kubernetes.io/* annotations only "
        "runtime/default or localhost/<profile>."
    ),
)
def apparmor(workload: Workload, params: Params) -> Outcome:
    patch = workload.patch()
    bad_values: set[str] = set()
    pod_profile = workload.pod_security_context.get("appArmorProfile")
    pod_bad = pod_profile is not None and as_dict(pod_profile).get("type") not in APPARMOR_ALLOWED
    if pod_bad:
        bad_values.add(str(as_dict(pod_profile).get("type", "")))
        patch.set((*workload.pod_spec_path, "securityContext", "appArmorProfile"), {"type": "RuntimeDefault"})
    bad: list[ContainerRef] = []
    for ref in workload.containers():
        profile = ref.security_context.get("appArmorProfile")
        if profile is not None and as_dict(profile).get("type") not in APPARMOR_ALLOWED:
            bad.append(ref)
            bad_values.add(str(as_dict(profile).get("type", "")))
            patch.set((*ref.path, "securityContext", "appArmorProfile"), {"type": "RuntimeDefault"})
    annotations = as_dict(workload.pod_meta.get("annotations"))
    bad_annotations: list[str] = []
    for key, value in sorted(annotations.items()):
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and not _apparmor_annotation_allowed(value):
            bad_annotations.append(f'{key}="{value}"')
            patch.set((*workload.pod_meta_path, "annotations", key), "runtime/default")
    if not (pod_bad or bad or bad_annotations):
        return passed("no forbidden AppArmor profile")
    setters = _setters(pod_bad, bad)
    parts = []
    if setters:
        parts.append(f"{setters} must not set AppArmor profile type to {quote_all(sorted(bad_values))}")
    if bad_annotations:
        parts.append("forbidden annotations " + ", ".join(bad_annotations))
    return failed("; ".join(parts), patch.build())


def _apparmor_annotation_allowed(value: Any) -> bool:
    return value in ("", None, "runtime/default") or (isinstance(value, str) and value.startswith("localhost/"))


def _selinux_faults(options: dict[str, Any]) -> list[str]:
    faults = []
    selinux_type = options.get("type") or ""
    if selinux_type not in SELINUX_TYPES_ALLOWED:
        faults.append(f'type "{selinux_type}"')
    if options.get("user"):
        faults.append("user may not be set")
    if options.get("role"):
        faults.append("role may not be set")
    return faults


def _selinux_cleaned(options: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: v for k, v in options.items() if k not in ("user", "role")}
    if (cleaned.get("type") or "") not in SELINUX_TYPES_ALLOWED:
        cleaned.pop("type")
    return cleaned


@builtin_check(
    id="pss.baseline.selinux",
    title="SELinux options",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="seLinuxOptions",
    description="A custom SELinux user, role or type lets a container escape the container SELinux domain.",
    remediation=(
        "Leave seLinuxOptions.user and .role unset, and use only the types container_t, container_init_t, "
        "container_kvm_t or container_engine_t (or none), at pod and container level."
    ),
)
def selinux(workload: Workload, params: Params) -> Outcome:
    patch = workload.patch()
    faults: list[str] = []
    pod_options = workload.pod_security_context.get("seLinuxOptions")
    pod_faults = _selinux_faults(as_dict(pod_options)) if pod_options is not None else []
    if pod_faults:
        faults.extend(pod_faults)
        cleaned = _selinux_cleaned(as_dict(pod_options))
        patch.set((*workload.pod_spec_path, "securityContext", "seLinuxOptions"), cleaned)
    bad: list[ContainerRef] = []
    for ref in workload.containers():
        options = ref.security_context.get("seLinuxOptions")
        found = _selinux_faults(as_dict(options)) if options is not None else []
        if found:
            bad.append(ref)
            faults.extend(f for f in found if f not in faults)
            patch.set((*ref.path, "securityContext", "seLinuxOptions"), _selinux_cleaned(as_dict(options)))
    if not (pod_faults or bad):
        return passed("no forbidden SELinux option")
    unique = list(dict.fromkeys(faults))
    return failed(
        f"{_setters(bool(pod_faults), bad)} set forbidden securityContext.seLinuxOptions: {'; '.join(unique)}",
        patch.build(),
    )


def proc_mount_faults(workload: Workload) -> Outcome:
    """Shared by baseline (relaxed in user namespaces) and restricted (never relaxed): procMount must be Default."""
    bad: list[ContainerRef] = []
    values: set[str] = set()
    patch = workload.patch()
    for ref in workload.containers():
        value = ref.security_context.get("procMount")
        if value is not None and value != "Default":
            bad.append(ref)
            values.add(str(value))
            patch.set((*ref.path, "securityContext", "procMount"), "Default")
    if not bad:
        return passed("no container unmasks /proc")
    listed = quote_all(sorted(values))
    return failed(f"{describe(bad)} must not set securityContext.procMount to {listed}", patch.build())


@builtin_check(
    id="pss.baseline.proc-mount",
    title="/proc mount type",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="procMount",
    description="An Unmasked /proc exposes kernel interfaces the default masks hide (allowed in user namespaces).",
    remediation='Remove securityContext.procMount or set it to "Default" (or run the pod with hostUsers: false).',
)
def proc_mount_baseline(workload: Workload, params: Params) -> Outcome:
    if workload.in_user_namespace:
        return passed("the pod runs in a user namespace (hostUsers: false): any procMount is allowed")
    return proc_mount_faults(workload)


def seccomp_explicit_faults(workload: Workload) -> tuple[bool, list[ContainerRef], set[str]]:
    """Whether the pod, and which containers, set a seccomp type other than RuntimeDefault or Localhost."""
    values: set[str] = set()
    profile = workload.pod_security_context.get("seccompProfile")
    pod_bad = profile is not None and as_dict(profile).get("type") not in SECCOMP_ALLOWED
    if pod_bad:
        values.add(str(as_dict(profile).get("type", "")))
    bad: list[ContainerRef] = []
    for ref in workload.containers():
        profile = ref.security_context.get("seccompProfile")
        if profile is not None and as_dict(profile).get("type") not in SECCOMP_ALLOWED:
            bad.append(ref)
            values.add(str(as_dict(profile).get("type", "")))
    return pod_bad, bad, values


def seccomp_fix(workload: Workload, *, pod: bool, containers: list[ContainerRef]) -> list[dict[str, Any]]:
    """RuntimeDefault at pod level (when ``pod``) and on each of ``containers``."""
    patch = workload.patch()
    if pod:
        patch.set((*workload.pod_spec_path, "securityContext", "seccompProfile"), {"type": "RuntimeDefault"})
    for ref in containers:
        patch.set((*ref.path, "securityContext", "seccompProfile"), {"type": "RuntimeDefault"})
    return patch.build()


@builtin_check(
    id="pss.baseline.seccomp",
    title="Seccomp profile not Unconfined",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="seccompProfile_baseline",
    description="An Unconfined seccomp profile lets a container make every system call.",
    remediation="Set securityContext.seccompProfile.type to RuntimeDefault or Localhost, or leave it unset.",
)
def seccomp_baseline(workload: Workload, params: Params) -> Outcome:
    pod_bad, bad, values = seccomp_explicit_faults(workload)
    if not (pod_bad or bad):
        return passed("no seccomp profile is Unconfined")
    return failed(
        f"{_setters(pod_bad, bad)} must not set securityContext.seccompProfile.type to {quote_all(sorted(values))}",
        seccomp_fix(workload, pod=pod_bad, containers=bad),
    )


@builtin_check(
    id="pss.baseline.sysctls",
    title="Unsafe sysctls",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="sysctls",
    description="Sysctls outside the safe, namespaced set can disable security mechanisms or affect the whole node.",
    remediation="Keep only the safe sysctls in spec.securityContext.sysctls: " + ", ".join(sorted(SYSCTLS_ALLOWED)),
)
def sysctls(workload: Workload, params: Params) -> Outcome:
    entries = as_list(workload.pod_security_context.get("sysctls"))
    forbidden = [str(as_dict(e).get("name", "")) for e in entries if as_dict(e).get("name") not in SYSCTLS_ALLOWED]
    if not forbidden:
        return passed("only safe sysctls")
    kept = [e for e in entries if as_dict(e).get("name") in SYSCTLS_ALLOWED]
    fix = workload.patch().set((*workload.pod_spec_path, "securityContext", "sysctls"), kept).build()
    return failed(f"pod sets forbidden sysctls {', '.join(forbidden)}", fix)


@builtin_check(
    id="pss.baseline.windows-host-process",
    title="Windows HostProcess",
    severity=Severity.CRITICAL,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="windowsHostProcess",
    description="A Windows HostProcess container runs directly on the node with the node's privileges.",
    remediation="Remove securityContext.windowsOptions.hostProcess at pod and container level, or set it false.",
)
def windows_host_process(workload: Workload, params: Params) -> Outcome:
    patch = workload.patch()
    pod_bad = as_dict(workload.pod_security_context.get("windowsOptions")).get("hostProcess") is True
    if pod_bad:
        patch.set((*workload.pod_spec_path, "securityContext", "windowsOptions", "hostProcess"), False)
    bad = [
        c for c in workload.containers() if as_dict(c.security_context.get("windowsOptions")).get("hostProcess") is True
    ]
    for ref in bad:
        patch.set((*ref.path, "securityContext", "windowsOptions", "hostProcess"), False)
    if not (pod_bad or bad):
        return passed("no Windows HostProcess")
    return failed(
        f"{_setters(pod_bad, bad)} must not set securityContext.windowsOptions.hostProcess=true", patch.build()
    )


@builtin_check(
    id="pss.baseline.host-probes",
    title="Probe and lifecycle hosts",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    policy=POLICY_BASELINE,
    upstream_id="hostProbesAndHostLifecycle",
    description="A probe or lifecycle hook with a host makes the kubelet connect anywhere on the node's behalf.",
    remediation="Remove the host field from httpGet and tcpSocket probes and lifecycle handlers (the pod IP is used).",
)
def host_probes(workload: Workload, params: Params) -> Outcome:
    bad: list[ContainerRef] = []
    hosts: set[str] = set()
    patch = workload.patch()
    for ref in workload.containers():
        handlers: list[tuple[tuple[str, ...], dict[str, Any]]] = [
            ((probe,), as_dict(ref.spec.get(probe))) for probe in PROBES
        ]
        lifecycle = as_dict(ref.spec.get("lifecycle"))
        handlers += [(("lifecycle", hook), as_dict(lifecycle.get(hook))) for hook in LIFECYCLE_HOOKS]
        found = False
        for where, handler in handlers:
            for kind in HANDLERS_WITH_HOST:
                action = as_dict(handler.get(kind))
                if action.get("host"):
                    found = True
                    hosts.add(str(action["host"]))
                    cleaned = {k: v for k, v in action.items() if k != "host"}
                    patch.set((*ref.path, *where, kind), cleaned)
        if found:
            bad.append(ref)
    if not bad:
        return passed("no probe or lifecycle handler sets a host")
    return failed(f"{describe(bad)} use probe or lifecycle host {quote_all(sorted(hosts))}", patch.build())
