"""The built-in compliance checks: a pass and a fail manifest for every control, fixes that fix. Pure, no database."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apps.compliance.checks import (
    POLICY_BASELINE,
    POLICY_BEST_PRACTICE,
    POLICY_RESTRICTED,
    Check,
    Parameter,
    Severity,
    Status,
    check_get,
    checks_all,
    checks_for_policy,
    evaluate,
    pointer,
    pointer_escape,
)
from apps.compliance.checks.base import failed

IMAGE = "ghcr.io/acme/app:1.4.2"


# ---------------------------------------------------------------- manifests the tests write


def ctr(name: str = "app", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, **fields}


def sc(**fields: Any) -> dict[str, Any]:
    """A container's securityContext, as a keyword for ctr()."""
    return {"securityContext": fields}


def spec(*containers: dict[str, Any], init: tuple = (), ephemeral: tuple = (), **pod: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": list(containers) or [ctr()], **pod}
    if init:
        body["initContainers"] = list(init)
    if ephemeral:
        body["ephemeralContainers"] = list(ephemeral)
    return body


def pod_sc(**fields: Any) -> dict[str, Any]:
    return {"securityContext": fields}


def wrap(kind: str, pod_spec: dict[str, Any], *, annotations: dict | None = None, **top: Any) -> dict[str, Any]:
    """``pod_spec`` as a ``kind`` object in namespace shop, with the pod metadata at the kind's template path."""
    pod_meta: dict[str, Any] = {"labels": {"app": "shop"}}
    if annotations:
        pod_meta["annotations"] = annotations
    template = {"metadata": pod_meta, "spec": pod_spec}
    metadata = {"name": "shop", "namespace": "shop", **top.pop("metadata", {})}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {**metadata, **pod_meta}, "spec": pod_spec}
    if kind == "CronJob":
        body = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
        return {"apiVersion": "batch/v1", "kind": kind, "metadata": metadata, "spec": body}
    api_version = "batch/v1" if kind == "Job" else "apps/v1"
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": {**top, "template": template}}


def deployment(pod_spec: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return wrap("Deployment", pod_spec, **kw)


def apply_patch(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A tiny RFC 6902 applier (add and replace): a missing parent raises, an array index inserts as the RFC says."""
    doc = copy.deepcopy(document)
    for op in ops:
        assert op["op"] in ("add", "replace"), op
        assert op["path"].startswith("/"), op
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        parent: Any = doc
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last, value = tokens[-1], copy.deepcopy(op["value"])
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(index, value)
            else:
                parent[index] = value
        else:
            if op["op"] == "replace":
                assert last in parent, op
            parent[last] = value
    return doc


def run(obj: dict[str, Any], check_id: str, params: dict[str, Any] | None = None):
    (result,) = evaluate(obj, [check_id], {check_id: params} if params else None)
    assert result.check_id == check_id
    return result


# ---------------------------------------------------------------- the tables: (check, manifest, expected, message)

PASS = Status.PASS
FAIL = Status.FAIL
SKIP = Status.SKIP
UNMASKED = sc(procMount="Unmasked")

PSS_CASES = [
    # host namespaces
    ("pss.baseline.host-namespaces", spec(), PASS, ""),
    ("pss.baseline.host-namespaces", spec(hostNetwork=False, hostPID=False), PASS, ""),
    ("pss.baseline.host-namespaces", spec(hostNetwork=True), FAIL, "hostNetwork=true"),
    ("pss.baseline.host-namespaces", spec(hostPID=True, hostIPC=True), FAIL, "hostPID=true, hostIPC=true"),
    # privileged
    ("pss.baseline.privileged", spec(ctr(**sc(privileged=False))), PASS, ""),
    ("pss.baseline.privileged", spec(ctr(**sc(privileged=True))), FAIL, 'container "app" must not set'),
    ("pss.baseline.privileged", spec(init=(ctr("init", **sc(privileged=True)),)), FAIL, 'initContainer "init"'),
    ("pss.baseline.privileged", spec(ephemeral=(ctr("dbg", **sc(privileged=True)),)), FAIL, 'ephemeralContainer "dbg"'),
    # baseline capabilities
    ("pss.baseline.capabilities", spec(ctr(**sc(capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"]}))), PASS, ""),
    ("pss.baseline.capabilities", spec(ctr(**sc(capabilities={"drop": ["ALL"]}))), PASS, ""),
    ("pss.baseline.capabilities", spec(ctr(**sc(capabilities={"add": ["NET_RAW", "CHOWN"]}))), FAIL, '"NET_RAW"'),
    (
        "pss.baseline.capabilities",
        spec(init=(ctr("init", **sc(capabilities={"add": ["SYS_ADMIN"]})),)),
        FAIL,
        'initContainer "init" must not include "SYS_ADMIN"',
    ),
    # hostPath volumes
    ("pss.baseline.host-path-volumes", spec(volumes=[{"name": "tmp", "emptyDir": {}}]), PASS, ""),
    ("pss.baseline.host-path-volumes", spec(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), FAIL, 'volume "h"'),
    # host ports
    (
        "pss.baseline.host-ports",
        spec(ctr(ports=[{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}])),
        PASS,
        "",
    ),
    ("pss.baseline.host-ports", spec(ctr(ports=[{"containerPort": 80, "hostPort": 8080}])), FAIL, "hostPort 8080"),
    ("pss.baseline.host-ports", spec(init=(ctr("i", ports=[{"containerPort": 1, "hostPort": 9}]),)), FAIL, '"i"'),
    # AppArmor
    ("pss.baseline.apparmor", spec(**pod_sc(appArmorProfile={"type": "RuntimeDefault"})), PASS, ""),
    (
        "pss.baseline.apparmor",
        spec(ctr(**sc(appArmorProfile={"type": "Localhost", "localhostProfile": "p"}))),
        PASS,
        "",
    ),
    ("pss.baseline.apparmor", spec(**pod_sc(appArmorProfile={"type": "Unconfined"})), FAIL, "pod must not set AppArm"),
    (
        "pss.baseline.apparmor",
        spec(ephemeral=(ctr("dbg", **sc(appArmorProfile={"type": "Unconfined"})),)),
        FAIL,
        'ephemeralContainer "dbg" must not set AppArmor profile type to "Unconfined"',
    ),
    # SELinux
    ("pss.baseline.selinux", spec(**pod_sc(seLinuxOptions={"type": "container_t", "level": "s0:c1"})), PASS, ""),
    ("pss.baseline.selinux", spec(ctr(**sc(seLinuxOptions={"type": "container_engine_t"}))), PASS, ""),
    ("pss.baseline.selinux", spec(**pod_sc(seLinuxOptions={"type": "spc_t"})), FAIL, 'type "spc_t"'),
    ("pss.baseline.selinux", spec(ctr(**sc(seLinuxOptions={"user": "root"}))), FAIL, "user may not be set"),
    ("pss.baseline.selinux", spec(init=(ctr("i", **sc(seLinuxOptions={"role": "r"})),)), FAIL, "role may not be set"),
    # /proc mount
    ("pss.baseline.proc-mount", spec(ctr(**sc(procMount="Default"))), PASS, ""),
    ("pss.baseline.proc-mount", spec(ctr(**UNMASKED), hostUsers=False), PASS, "user namespace"),
    ("pss.baseline.proc-mount", spec(ctr(**UNMASKED)), FAIL, 'must not set securityContext.procMount to "Unmasked"'),
    # baseline seccomp: only explicit bad values fail
    ("pss.baseline.seccomp", spec(), PASS, ""),
    ("pss.baseline.seccomp", spec(ctr(**sc(seccompProfile={"type": "Localhost", "localhostProfile": "p"}))), PASS, ""),
    ("pss.baseline.seccomp", spec(**pod_sc(seccompProfile={"type": "Unconfined"})), FAIL, "pod must not set"),
    ("pss.baseline.seccomp", spec(ctr(**sc(seccompProfile={"type": "Unconfined"}))), FAIL, 'container "app"'),
    # sysctls (the 1.32 safe set)
    (
        "pss.baseline.sysctls",
        spec(**pod_sc(sysctls=[{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}])),
        PASS,
        "",
    ),
    ("pss.baseline.sysctls", spec(**pod_sc(sysctls=[{"name": "kernel.msgmax", "value": "1"}])), FAIL, "kernel.msgmax"),
    # Windows HostProcess
    ("pss.baseline.windows-host-process", spec(ctr(**sc(windowsOptions={"hostProcess": False}))), PASS, ""),
    ("pss.baseline.windows-host-process", spec(**pod_sc(windowsOptions={"hostProcess": True})), FAIL, "pod must not"),
    ("pss.baseline.windows-host-process", spec(ctr(**sc(windowsOptions={"hostProcess": True}))), FAIL, '"app"'),
    # probe and lifecycle hosts
    ("pss.baseline.host-probes", spec(ctr(livenessProbe={"httpGet": {"path": "/", "port": 80}})), PASS, ""),
    (
        "pss.baseline.host-probes",
        spec(ctr(livenessProbe={"httpGet": {"port": 80, "host": "10.0.0.1"}})),
        FAIL,
        "10.0.0.1",
    ),
    (
        "pss.baseline.host-probes",
        spec(init=(ctr("i", lifecycle={"preStop": {"tcpSocket": {"port": 1, "host": "db"}}}),)),
        FAIL,
        'initContainer "i" use probe or lifecycle host "db"',
    ),
    # restricted volume types
    (
        "pss.restricted.volume-types",
        spec(
            volumes=[
                {"name": "a", "configMap": {"name": "c"}},
                {"name": "b", "secret": {"secretName": "s"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "p"}},
                {"name": "d", "projected": {"sources": []}},
                {"name": "e", "csi": {"driver": "x"}},
                {"name": "f", "ephemeral": {"volumeClaimTemplate": {}}},
                {"name": "g", "image": {"reference": IMAGE}},
                {"name": "h", "downwardAPI": {"items": []}},
                {"name": "i", "emptyDir": {}},
                {"name": "j"},  # the API server defaults a sourceless volume to emptyDir
            ]
        ),
        PASS,
        "",
    ),
    ("pss.restricted.volume-types", spec(volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}}]), FAIL, '"nfs"'),
    ("pss.restricted.volume-types", spec(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), FAIL, '"hostPath"'),
    # privilege escalation
    (
        "pss.restricted.privilege-escalation",
        spec(
            ctr(**sc(allowPrivilegeEscalation=False)),
            init=(ctr("i", **sc(allowPrivilegeEscalation=False)),),
            ephemeral=(ctr("d", **sc(allowPrivilegeEscalation=False)),),
        ),
        PASS,
        "",
    ),
    ("pss.restricted.privilege-escalation", spec(os={"name": "windows"}), PASS, "Windows"),
    ("pss.restricted.privilege-escalation", spec(), FAIL, 'container "app" must set'),
    ("pss.restricted.privilege-escalation", spec(ctr(**sc(allowPrivilegeEscalation=True))), FAIL, '"app"'),
    (
        "pss.restricted.privilege-escalation",
        spec(ctr(**sc(allowPrivilegeEscalation=False)), ephemeral=(ctr("dbg"),)),
        FAIL,
        'ephemeralContainer "dbg"',
    ),
    # runAsNonRoot: the pod level covers containers that say nothing; an explicit false anywhere fails
    ("pss.restricted.run-as-non-root", spec(**pod_sc(runAsNonRoot=True)), PASS, ""),
    (
        "pss.restricted.run-as-non-root",
        spec(ctr(**sc(runAsNonRoot=True)), init=(ctr("i", **sc(runAsNonRoot=True)),)),
        PASS,
        "",
    ),
    ("pss.restricted.run-as-non-root", spec(hostUsers=False), PASS, "user namespace"),
    (
        "pss.restricted.run-as-non-root",
        spec(),
        FAIL,
        'pod or container "app" must set securityContext.runAsNonRoot=true',
    ),
    (
        "pss.restricted.run-as-non-root",
        spec(ctr(**sc(runAsNonRoot=False)), **pod_sc(runAsNonRoot=True)),
        FAIL,
        'container "app" must not set securityContext.runAsNonRoot=false',
    ),
    (
        "pss.restricted.run-as-non-root",
        spec(ctr(**sc(runAsNonRoot=True)), **pod_sc(runAsNonRoot=False)),
        FAIL,
        "pod must not set securityContext.runAsNonRoot=false",
    ),
    (
        "pss.restricted.run-as-non-root",
        spec(ctr(**sc(runAsNonRoot=True)), init=(ctr("init"),)),
        FAIL,
        'pod or initContainer "init" must set',
    ),
    # runAsUser 0
    ("pss.restricted.run-as-user", spec(ctr(**sc(runAsUser=1000)), **pod_sc(runAsUser=1000)), PASS, ""),
    ("pss.restricted.run-as-user", spec(ctr(**sc(runAsUser=0)), hostUsers=False), PASS, "user namespace"),
    ("pss.restricted.run-as-user", spec(**pod_sc(runAsUser=0)), FAIL, "pod must not set runAsUser=0"),
    ("pss.restricted.run-as-user", spec(ephemeral=(ctr("d", **sc(runAsUser=0)),)), FAIL, 'ephemeralContainer "d"'),
    # restricted seccomp: required at pod level or on every container without it
    ("pss.restricted.seccomp", spec(**pod_sc(seccompProfile={"type": "RuntimeDefault"})), PASS, ""),
    (
        "pss.restricted.seccomp",
        spec(
            ctr(**sc(seccompProfile={"type": "Localhost", "localhostProfile": "p"})),
            init=(ctr("i", **sc(seccompProfile={"type": "RuntimeDefault"})),),
        ),
        PASS,
        "",
    ),
    ("pss.restricted.seccomp", spec(os={"name": "windows"}), PASS, "Windows"),
    ("pss.restricted.seccomp", spec(), FAIL, 'pod or container "app" must set securityContext.seccompProfile.type'),
    (
        "pss.restricted.seccomp",
        spec(ctr(**sc(seccompProfile={"type": "Unconfined"})), **pod_sc(seccompProfile={"type": "RuntimeDefault"})),
        FAIL,
        'container "app" must not set securityContext.seccompProfile.type to "Unconfined"',
    ),
    (
        "pss.restricted.seccomp",
        spec(ctr(**sc(seccompProfile={"type": "RuntimeDefault"})), **pod_sc(seccompProfile={"type": "Unconfined"})),
        FAIL,
        "pod must not set",
    ),
    (
        "pss.restricted.seccomp",
        spec(ctr(**sc(seccompProfile={"type": "RuntimeDefault"})), init=(ctr("init"),)),
        FAIL,
        'pod or initContainer "init" must set',
    ),
    # restricted capabilities
    (
        "pss.restricted.capabilities",
        spec(ctr(**sc(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}))),
        PASS,
        "",
    ),
    ("pss.restricted.capabilities", spec(os={"name": "windows"}), PASS, "Windows"),
    ("pss.restricted.capabilities", spec(ctr(**sc(capabilities={"drop": ["NET_RAW"]}))), FAIL, 'drop=["ALL"]'),
    (
        "pss.restricted.capabilities",
        spec(ctr(**sc(capabilities={"drop": ["ALL"], "add": ["SYS_TIME", "NET_BIND_SERVICE"]}))),
        FAIL,
        'container "app" must not include "SYS_TIME"',
    ),
    ("pss.restricted.capabilities", spec(init=(ctr("init"),)), FAIL, 'initContainer "init"'),
    # restricted /proc mount: no user-namespace relaxation
    ("pss.restricted.proc-mount", spec(ctr(**sc(procMount="Default"))), PASS, ""),
    ("pss.restricted.proc-mount", spec(ctr(**UNMASKED), hostUsers=False), FAIL, '"Unmasked"'),
]

RESOURCED = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
PROBED = {"livenessProbe": {"httpGet": {"path": "/healthz", "port": 80}}, "readinessProbe": {"tcpSocket": {"port": 80}}}

# (check, object, params, expected, message)
BP_CASES = [
    *[
        case
        for check_id, section, resource in (
            ("bp.cpu-requests", "requests", "cpu"),
            ("bp.memory-requests", "requests", "memory"),
            ("bp.cpu-limits", "limits", "cpu"),
            ("bp.memory-limits", "limits", "memory"),
        )
        for case in (
            (
                check_id,
                deployment(spec(ctr(resources=RESOURCED), init=(ctr("i", resources=RESOURCED),))),
                None,
                PASS,
                "",
            ),
            (check_id, deployment(spec(ctr())), None, FAIL, f'container "app" must set resources.{section}.{resource}'),
            (
                check_id,
                deployment(spec(ctr(resources=RESOURCED), init=(ctr("init"),))),
                None,
                FAIL,
                'initContainer "init"',
            ),
        )
    ],
    # probes: containers only, never init containers, never Jobs
    ("bp.liveness-probe", deployment(spec(ctr(**PROBED), init=(ctr("init"),))), None, PASS, ""),
    ("bp.liveness-probe", deployment(spec(ctr())), None, FAIL, 'container "app" must define livenessProbe'),
    ("bp.liveness-probe", wrap("Job", spec(ctr())), None, SKIP, "Job"),
    ("bp.liveness-probe", wrap("CronJob", spec(ctr())), None, SKIP, "CronJob"),
    ("bp.readiness-probe", deployment(spec(ctr(**PROBED), init=(ctr("init"),))), None, PASS, ""),
    ("bp.readiness-probe", deployment(spec(ctr(), ctr("side", **PROBED))), None, FAIL, 'container "app" must define'),
    ("bp.readiness-probe", wrap("Job", spec(ctr())), None, SKIP, "Job"),
    # image tags
    *[
        ("bp.image-tag", deployment(spec(ctr(image=image))), None, PASS, "")
        for image in (
            "nginx:1.27",
            "registry.local:5000/team/app:2.0",
            "nginx@sha256:" + "a" * 64,
            "nginx:latest@sha256:" + "b" * 64,
        )
    ],
    ("bp.image-tag", deployment(spec(ctr(image="nginx"))), None, FAIL, 'image "nginx" has no tag'),
    ("bp.image-tag", deployment(spec(ctr(image="nginx:latest"))), None, FAIL, "uses the latest tag"),
    ("bp.image-tag", deployment(spec(ctr(image="registry.local:5000/app"))), None, FAIL, "has no tag"),
    (
        "bp.image-tag",
        wrap("Pod", spec(ephemeral=(ctr("dbg", image="busybox"),))),
        None,
        FAIL,
        'ephemeralContainer "dbg"',
    ),
    # allowed registries
    ("bp.allowed-registries", deployment(spec()), {"registries": ["ghcr.io/acme/"]}, PASS, ""),
    ("bp.allowed-registries", deployment(spec(ctr(image="nginx:1"))), {"registries": ["docker.io/library/"]}, PASS, ""),
    (
        "bp.allowed-registries",
        deployment(spec(ctr(image="nginx:1"))),
        {"registries": ["ghcr.io/acme/"]},
        FAIL,
        "nginx:1",
    ),
    (
        "bp.allowed-registries",
        deployment(spec(init=(ctr("i", image="ghcr.io/acmeevil/x:1"),))),
        {"registries": ["ghcr.io/acme/"]},
        FAIL,
        'initContainer "i"',
    ),
    ("bp.allowed-registries", deployment(spec(ctr(image="nginx"))), None, SKIP, "no allowed registries"),
    # read-only root filesystem
    ("bp.read-only-root-filesystem", deployment(spec(ctr(**sc(readOnlyRootFilesystem=True)))), None, PASS, ""),
    ("bp.read-only-root-filesystem", deployment(spec()), None, FAIL, 'container "app" must set'),
    # NET_RAW
    ("bp.drop-net-raw", deployment(spec(ctr(**sc(capabilities={"drop": ["NET_RAW"]})))), None, PASS, ""),
    ("bp.drop-net-raw", deployment(spec(ctr(**sc(capabilities={"drop": ["ALL"]})))), None, PASS, ""),
    ("bp.drop-net-raw", deployment(spec()), None, FAIL, 'container "app" must drop NET_RAW'),
    (
        "bp.drop-net-raw",
        deployment(spec(ctr(**sc(capabilities={"drop": ["ALL"], "add": ["NET_RAW"]})))),
        None,
        FAIL,
        "not add it",
    ),
    # required labels
    ("bp.required-labels", deployment(spec(), metadata={"labels": {"team": "web"}}), {"labels": ["team"]}, PASS, ""),
    ("bp.required-labels", deployment(spec()), {"labels": ["team", "cost-center"]}, FAIL, "lacks team, cost-center"),
    ("bp.required-labels", deployment(spec()), None, SKIP, "no required labels"),
    # namespace
    ("bp.not-default-namespace", deployment(spec()), None, PASS, 'namespace "shop"'),
    ("bp.not-default-namespace", deployment(spec(), metadata={"namespace": "default"}), None, FAIL, '"default"'),
    ("bp.not-default-namespace", {"kind": "Pod", "metadata": {"name": "p"}, "spec": spec()}, None, SKIP, "namespace"),
    # ServiceAccount token
    ("bp.automount-service-account-token", deployment(spec(automountServiceAccountToken=False)), None, PASS, ""),
    ("bp.automount-service-account-token", deployment(spec()), None, FAIL, 'ServiceAccount "default"'),
    (
        "bp.automount-service-account-token",
        deployment(spec(serviceAccountName="ops", automountServiceAccountToken=True)),
        None,
        FAIL,
        '"ops"',
    ),
    (
        "bp.automount-service-account-token",
        deployment(spec(serviceAccountName="operator")),
        {"service_accounts_using_token": ["operator"]},
        SKIP,
        '"operator"',
    ),
    # replicas
    ("bp.replicas", deployment(spec(), replicas=3), None, PASS, "3"),
    ("bp.replicas", wrap("StatefulSet", spec(), replicas=2), None, PASS, ""),
    ("bp.replicas", deployment(spec()), None, FAIL, "spec.replicas is 1, fewer than 2"),
    ("bp.replicas", wrap("StatefulSet", spec(), replicas=1), None, FAIL, "fewer than 2"),
    ("bp.replicas", deployment(spec(), replicas=2), {"min_replicas": 3}, FAIL, "fewer than 3"),
    ("bp.replicas", wrap("DaemonSet", spec()), None, SKIP, "DaemonSet"),
    ("bp.replicas", deployment(spec(), replicas=0), None, SKIP, "zero"),
]

CASES = [
    pytest.param(check_id, wrap("Pod", body), None, expected, message, id=f"{check_id}-{expected}-{n}")
    for n, (check_id, body, expected, message) in enumerate(PSS_CASES)
] + [
    pytest.param(check_id, obj, params, expected, message, id=f"{check_id}-{expected}-{n}")
    for n, (check_id, obj, params, expected, message) in enumerate(BP_CASES)
]
FAILING = [case for case in CASES if case.values[3] == FAIL]


# ---------------------------------------------------------------- every control, pass and fail


@pytest.mark.parametrize(("check_id", "obj", "params", "expected", "message"), CASES)
def test_each_check_judges_its_manifest(check_id, obj, params, expected, message):
    result = run(obj, check_id, params)
    assert result.status == expected, result.message
    assert message in result.message
    assert result.severity == check_get(check_id).severity
    if expected != FAIL:
        assert result.fix is None


def test_every_check_has_a_pass_and_a_fail_manifest():
    covered = {status: {c.values[0] for c in CASES if c.values[3] == status} for status in (PASS, FAIL)}
    every = {check.id for check in checks_all()}
    assert covered[PASS] == every
    assert covered[FAIL] == every


CHECKS_WITHOUT_FIX = {
    "pss.baseline.host-path-volumes",
    "pss.restricted.volume-types",
    "pss.restricted.run-as-user",
    "bp.cpu-requests",
    "bp.memory-requests",
    "bp.cpu-limits",
    "bp.memory-limits",
    "bp.liveness-probe",
    "bp.readiness-probe",
    "bp.image-tag",
    "bp.allowed-registries",
    "bp.required-labels",
    "bp.not-default-namespace",
}
FIXABLE = [case for case in FAILING if case.values[0] not in CHECKS_WITHOUT_FIX]


@pytest.mark.parametrize(("check_id", "obj", "params", "expected", "message"), FIXABLE)
def test_a_fix_makes_the_failing_check_pass(check_id, obj, params, expected, message):
    original = copy.deepcopy(obj)
    result = run(obj, check_id, params)
    assert result.fix, result.message
    assert obj == original  # building the fix leaves the object alone
    assert all(op["op"] == "add" for op in result.fix)
    fixed = apply_patch(obj, result.fix)  # raises when an operation is not valid against the object
    assert run(fixed, check_id, params).status == PASS


def test_fixes_exist_exactly_where_a_safe_one_does():
    offered = {c.values[0] for c in FAILING if run(c.values[1], c.values[0], c.values[2]).fix}
    assert offered == {check.id for check in checks_all()} - CHECKS_WITHOUT_FIX


# ---------------------------------------------------------------- kinds: where the pod is, and where fixes point

KIND_POD_SPEC = {
    "Pod": "/spec",
    "Deployment": "/spec/template/spec",
    "StatefulSet": "/spec/template/spec",
    "DaemonSet": "/spec/template/spec",
    "Job": "/spec/template/spec",
    "CronJob": "/spec/jobTemplate/spec/template/spec",
}


@pytest.mark.parametrize(("kind", "pod_spec_pointer"), KIND_POD_SPEC.items())
def test_it_finds_the_pod_spec_of_each_kind(kind, pod_spec_pointer):
    obj = wrap(kind, spec(ctr(**sc(privileged=True, runAsUser=1000))))
    result = run(obj, "pss.baseline.privileged")
    assert result.status == FAIL
    assert result.fix == [
        {"op": "add", "path": f"{pod_spec_pointer}/containers/0/securityContext/privileged", "value": False}
    ]
    assert run(apply_patch(obj, result.fix), "pss.baseline.privileged").status == PASS


@pytest.mark.parametrize("kind", KIND_POD_SPEC)
def test_a_missing_security_context_is_added_whole(kind):
    obj = wrap(kind, spec())
    result = run(obj, "pss.restricted.seccomp")
    # Pod-level inheritance: one profile on the pod covers every container that sets none.
    assert result.fix == [
        {
            "op": "add",
            "path": f"{KIND_POD_SPEC[kind]}/securityContext",
            "value": {"seccompProfile": {"type": "RuntimeDefault"}},
        }
    ]


def test_annotation_keys_are_escaped_in_fix_pointers():
    key = "container.apparmor.security.beta.kubernetes.io/app"
    obj = deployment(spec(), annotations={key: "unconfined"})
    result = run(obj, "pss.baseline.apparmor")
    assert result.status == FAIL
    assert f'{key}="unconfined"' in result.message
    assert result.fix == [
        {
            "op": "add",
            "path": "/spec/template/metadata/annotations/container.apparmor.security.beta.kubernetes.io~1app",
            "value": "runtime/default",
        }
    ]
    assert run(apply_patch(obj, result.fix), "pss.baseline.apparmor").status == PASS
    ok = deployment(spec(), annotations={key: "localhost/strict", "other.io~x/y": "z"})
    assert run(ok, "pss.baseline.apparmor").status == PASS


def test_pointer_escapes_tilde_before_slash():
    assert pointer_escape("a/b~c") == "a~1b~0c"
    assert pointer_escape("~1") == "~01"
    assert pointer(["metadata", "annotations", "x/y~z", 0]) == "/metadata/annotations/x~1y~0z/0"


def test_two_fields_of_one_missing_object_make_a_valid_patch():
    obj = deployment(spec(ctr(**sc(capabilities={"add": ["SYS_TIME"]}))))
    result = run(obj, "pss.restricted.capabilities")
    assert [op["path"] for op in result.fix] == [
        "/spec/template/spec/containers/0/securityContext/capabilities/drop",
        "/spec/template/spec/containers/0/securityContext/capabilities/add",
    ]
    fixed = apply_patch(obj, result.fix)
    assert fixed["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] == {
        "add": [],
        "drop": ["ALL"],
    }


def test_array_fields_are_replaced_through_their_parent_never_inserted_into():
    obj = wrap("Pod", spec(ctr(ports=[{"containerPort": 80, "hostPort": 80}, {"containerPort": 90}])))
    result = run(obj, "pss.baseline.host-ports")
    assert result.fix == [
        {"op": "add", "path": "/spec/containers/0/ports", "value": [{"containerPort": 80}, {"containerPort": 90}]}
    ]


def test_messages_name_every_container_in_upstream_order():
    body = spec(
        ctr("web", **sc(privileged=True)),
        init=(ctr("setup", **sc(privileged=True)),),
        ephemeral=(ctr("debug", **sc(privileged=True)),),
    )
    result = run(wrap("Pod", body), "pss.baseline.privileged")
    assert result.message.startswith('initContainer "setup", container "web" and ephemeralContainer "debug"')
    assert len(result.fix) == 3


# ---------------------------------------------------------------- whole policies

HARDENED_CONTAINER = ctr(
    resources=RESOURCED,
    **PROBED,
    securityContext={
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    },
)
HARDENED = deployment(
    spec(
        HARDENED_CONTAINER,
        automountServiceAccountToken=False,
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    ),
    replicas=3,
)


def test_a_hardened_deployment_passes_every_check():
    results = evaluate(HARDENED)
    assert [r.check_id for r in results] == [c.id for c in checks_all()]
    assert {r.check_id: r.status for r in results if r.status != PASS} == {
        "bp.allowed-registries": SKIP,
        "bp.required-labels": SKIP,
    }


def test_applying_fixes_one_at_a_time_clears_every_fixable_failure():
    # Each fix is valid against the object it was computed on, so apply one and re-evaluate, as the watcher would.
    obj = deployment(spec(ctr(**sc(privileged=True, capabilities={"add": ["NET_RAW"]})), hostPID=True))
    for _ in range(len(checks_all())):
        fixable = [r for r in evaluate(obj) if r.fix]
        if not fixable:
            break
        obj = apply_patch(obj, fixable[0].fix)
    leftover = {r.check_id for r in evaluate(obj) if r.status == FAIL}
    assert leftover <= CHECKS_WITHOUT_FIX
    assert not {check_id for check_id in leftover if check_id.startswith("pss.")}


def test_the_restricted_policy_replaces_the_baseline_checks_it_tightens():
    baseline = {c.id for c in checks_for_policy(POLICY_BASELINE)}
    restricted = {c.id for c in checks_for_policy(POLICY_RESTRICTED)}
    assert len(baseline) == 12
    assert restricted == (
        baseline
        - {
            "pss.baseline.host-path-volumes",
            "pss.baseline.seccomp",
            "pss.baseline.capabilities",
            "pss.baseline.proc-mount",
        }
    ) | {c.id for c in checks_all() if c.policy == POLICY_RESTRICTED}
    assert len(checks_for_policy(POLICY_BEST_PRACTICE)) == 14
    with pytest.raises(ValueError, match="unknown policy"):
        checks_for_policy("nope")


ID_PREFIXES = {POLICY_BASELINE: "pss.baseline.", POLICY_RESTRICTED: "pss.restricted.", POLICY_BEST_PRACTICE: "bp."}


def test_every_check_is_documented():
    for check in checks_all():
        assert check.id.startswith(
            {"pss-baseline": "pss.baseline.", "pss-restricted": "pss.restricted.", "best-practice": "bp."}[check.policy]
        )
        assert check.title and check.description and check.remediation and check.category, check.id
        assert check.severity in set(Severity)
        if check.policy != POLICY_BEST_PRACTICE:
            assert check.upstream_id, check.id
        schema = check.parameters_schema()
        assert schema["type"] == "object"
        assert set(schema["properties"]) == {p.name for p in check.parameters}


# ---------------------------------------------------------------- errors and odd objects


def _raising(workload, params):
    raise RuntimeError("boom")


RAISING = Check(
    id="test.raises",
    title="Raises",
    severity=Severity.INFO,
    category="Test",
    policy=POLICY_BEST_PRACTICE,
    description="Always raises.",
    remediation="None.",
    function=_raising,
)


def test_a_check_that_raises_becomes_an_error_result_and_the_others_still_run():
    results = evaluate(deployment(spec()), [RAISING, "pss.baseline.privileged"])
    assert [(r.check_id, r.status) for r in results] == [
        ("test.raises", Status.ERROR),
        ("pss.baseline.privileged", PASS),
    ]
    assert results[0].message == "RuntimeError: boom"
    assert results[0].fix is None


def test_bad_parameters_are_an_error_result():
    obj = deployment(spec())
    (wrong_type,) = evaluate(obj, ["bp.allowed-registries"], {"bp.allowed-registries": {"registries": "ghcr.io/"}})
    assert wrong_type.status == Status.ERROR
    assert "list of strings" in wrong_type.message
    (unknown,) = evaluate(obj, ["bp.replicas"], {"bp.replicas": {"minimum": 3}})
    assert unknown.status == Status.ERROR
    assert "minimum" in unknown.message


def test_an_object_without_a_pod_skips_every_check():
    results = evaluate({"kind": "ConfigMap", "metadata": {"name": "c"}})
    assert {r.status for r in results} == {SKIP}
    assert "ConfigMap" in results[0].message


def test_malformed_fields_never_crash():
    obj = {
        "kind": "Deployment",
        "metadata": {"name": "odd", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": "not-a-list", "securityContext": None, "volumes": None}}},
    }
    results = evaluate(obj)
    assert Status.ERROR not in {r.status for r in results}
    bare = evaluate({"kind": "Deployment", "metadata": {"name": "empty"}})
    assert Status.ERROR not in {r.status for r in bare}


def test_a_check_function_parameter_default_is_used_when_none_is_given():
    check = Check(
        id="test.param",
        title="Param",
        severity=Severity.LOW,
        category="Test",
        policy=POLICY_BEST_PRACTICE,
        description="d",
        remediation="r",
        function=lambda workload, params: failed(f"limit {params['limit']}"),
        parameters=(Parameter("limit", "integer", 7, "a limit"),),
    )
    assert evaluate(deployment(spec()), [check])[0].message == "limit 7"
    assert evaluate(deployment(spec()), [check], {"test.param": {"limit": 9}})[0].message == "limit 9"
    assert evaluate(deployment(spec()), [check], {"test.param": {"limit": "9"}})[0].status == Status.ERROR
