"""Best-practice checks: resources, probes, images, hardening and hygiene that Pod Security Standards leave out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.compliance.checks.base import (
    POLICY_BEST_PRACTICE,
    CheckFunction,
    Outcome,
    Parameter,
    Severity,
    builtin_check,
    failed,
    passed,
    skipped,
)
from apps.compliance.checks.workload import JOB_KINDS, ContainerRef, Workload, as_dict, as_list, describe

Params = Mapping[str, Any]
# Ephemeral containers take no resources, probes or ports, and cannot be changed once added: they are left out.
RUNNING_LISTS = ("initContainers", "containers")
REPLICATED_KINDS = frozenset({"Deployment", "StatefulSet"})
DOCKER_HUB = "docker.io"


def _resource_check(section: str, resource: str) -> CheckFunction:
    def check(workload: Workload, params: Params) -> Outcome:
        containers = list(workload.containers(RUNNING_LISTS))
        if not containers:
            return skipped("the pod has no containers")
        bad = [
            c for c in containers if as_dict(as_dict(c.spec.get("resources")).get(section)).get(resource) in (None, "")
        ]
        if not bad:
            return passed(f"every container sets resources.{section}.{resource}")
        return failed(f"{describe(bad)} must set resources.{section}.{resource}")

    return check


_RESOURCE_CHECKS = (
    (
        "requests",
        "cpu",
        Severity.MEDIUM,
        "Without a CPU request the scheduler places the pod blindly and it is first to starve under contention.",
    ),
    (
        "requests",
        "memory",
        Severity.MEDIUM,
        "Without a memory request the scheduler can overcommit the node and the pod is first to be evicted.",
    ),
    (
        "limits",
        "cpu",
        Severity.LOW,
        "Without a CPU limit one busy container can take a node's spare CPU from its neighbours.",
    ),
    (
        "limits",
        "memory",
        Severity.MEDIUM,
        "Without a memory limit a leaking container grows until the node runs out of memory.",
    ),
)
for _section, _resource, _severity, _description in _RESOURCE_CHECKS:
    builtin_check(
        id=f"bp.{_resource}-{_section}",
        title=f"{'CPU' if _resource == 'cpu' else 'Memory'} {_section}",
        severity=_severity,
        category="Resources",
        policy=POLICY_BEST_PRACTICE,
        description=_description,
        remediation=f"Set resources.{_section}.{_resource} on every container and init container, sized from "
        "observed usage (the values are the workload's own, so no fix is proposed).",
    )(_resource_check(_section, _resource))


def _probe_check(probe: str) -> CheckFunction:
    def check(workload: Workload, params: Params) -> Outcome:
        if workload.kind in JOB_KINDS:
            return skipped(f"{workload.kind} pods run to completion: no {probe}")
        containers = list(workload.containers(("containers",)))
        if not containers:
            return skipped("the pod has no containers")
        bad = [c for c in containers if not c.spec.get(probe)]
        if not bad:
            return passed(f"every container has a {probe}")
        return failed(f"{describe(bad)} must define {probe}")

    return check


for _probe, _description in (
    ("livenessProbe", "Without a liveness probe a hung container is never restarted."),
    (
        "readinessProbe",
        "Without a readiness probe traffic reaches a container before it can serve, and during rollouts.",
    ),
):
    builtin_check(
        id="bp.liveness-probe" if _probe == "livenessProbe" else "bp.readiness-probe",
        title=f"{_probe[: -len('Probe')].capitalize()} probe",
        severity=Severity.MEDIUM,
        category="Reliability",
        policy=POLICY_BEST_PRACTICE,
        description=_description + " Init containers and Jobs are not checked.",
        remediation=f"Define {_probe} (httpGet, tcpSocket, grpc or exec) on every container; the endpoint is the "
        "application's own, so no fix is proposed.",
    )(_probe_check(_probe))


def image_reference(image: str) -> tuple[str, str | None, str | None]:
    """Split an image reference into (repository, tag, digest); the tag is after the last ``:`` of the last part."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def image_normalized(image: str) -> str:
    """``nginx`` is ``docker.io/library/nginx``: a first part without ``.`` or ``:`` (and not localhost) is no host."""
    first, _, remainder = image.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"{DOCKER_HUB}/{image}" if remainder else f"{DOCKER_HUB}/library/{image}"


@builtin_check(
    id="bp.image-tag",
    title="Image tag pinned",
    severity=Severity.MEDIUM,
    category="Images",
    policy=POLICY_BEST_PRACTICE,
    description="An image without a tag, or tagged latest, changes under the workload: rollbacks and audits lie.",
    remediation="Reference every image by a version tag, or better by digest (image@sha256:...).",
)
def image_tag(workload: Workload, params: Params) -> Outcome:
    bad: list[str] = []
    for ref in workload.containers():
        image = str(ref.spec.get("image") or "")
        _, tag, digest = image_reference(image)
        if digest:
            continue
        if not tag:
            bad.append(f'{ref.label} image "{image}" has no tag')
        elif tag == "latest":
            bad.append(f'{ref.label} image "{image}" uses the latest tag')
    if not bad:
        return passed("every image is pinned by tag or digest")
    return failed("; ".join(bad))


@builtin_check(
    id="bp.allowed-registries",
    title="Allowed registries",
    severity=Severity.HIGH,
    category="Images",
    policy=POLICY_BEST_PRACTICE,
    parameters=(
        Parameter(
            "registries",
            "array",
            [],
            "Image prefixes allowed, e.g. ghcr.io/acme/ (end with / to match whole path parts); empty skips the check.",
        ),
    ),
    description="Images must come from the organisation's registries, where they are scanned and signed.",
    remediation="Mirror the image into an allowed registry and reference it there.",
)
def allowed_registries(workload: Workload, params: Params) -> Outcome:
    prefixes: list[str] = params["registries"]
    if not prefixes:
        return skipped("no allowed registries configured")
    bad: list[str] = []
    for ref in workload.containers():
        image = str(ref.spec.get("image") or "")
        candidates = (image, image_normalized(image))
        if not any(c.startswith(prefix) for c in candidates for prefix in prefixes):
            bad.append(f'{ref.label} image "{image}"')
    if not bad:
        return passed("every image comes from an allowed registry")
    return failed(f"{'; '.join(bad)} not from an allowed registry ({', '.join(prefixes)})")


@builtin_check(
    id="bp.read-only-root-filesystem",
    title="Read-only root filesystem",
    severity=Severity.LOW,
    category="Security",
    policy=POLICY_BEST_PRACTICE,
    description="A writable root filesystem lets an intruder drop tools and persist changes inside the container.",
    remediation="Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the process writes.",
)
def read_only_root_filesystem(workload: Workload, params: Params) -> Outcome:
    containers = workload.containers(RUNNING_LISTS)
    bad = [c for c in containers if c.security_context.get("readOnlyRootFilesystem") is not True]
    if not bad:
        return passed("every container has a read-only root filesystem")
    patch = workload.patch()
    for ref in bad:
        patch.set((*ref.path, "securityContext", "readOnlyRootFilesystem"), True)
    return failed(f"{describe(bad)} must set securityContext.readOnlyRootFilesystem=true", patch.build())


@builtin_check(
    id="bp.drop-net-raw",
    title="Drop NET_RAW",
    severity=Severity.MEDIUM,
    category="Security",
    policy=POLICY_BEST_PRACTICE,
    description="NET_RAW, granted by default, allows packet crafting and ARP or DNS spoofing inside the node network.",
    remediation='Add "NET_RAW" (or "ALL") to securityContext.capabilities.drop and never to capabilities.add.',
)
def drop_net_raw(workload: Workload, params: Params) -> Outcome:
    bad: list[ContainerRef] = []
    patch = workload.patch()
    for ref in workload.containers(RUNNING_LISTS):
        capabilities = as_dict(ref.security_context.get("capabilities"))
        dropped = as_list(capabilities.get("drop"))
        added = as_list(capabilities.get("add"))
        if not ({"NET_RAW", "ALL"} & set(dropped)):
            bad.append(ref)
            patch.set((*ref.path, "securityContext", "capabilities", "drop"), [*dropped, "NET_RAW"])
        if "NET_RAW" in added:
            if ref not in bad:
                bad.append(ref)
            patch.set((*ref.path, "securityContext", "capabilities", "add"), [c for c in added if c != "NET_RAW"])
    if not bad:
        return passed("every container drops NET_RAW")
    return failed(f"{describe(bad)} must drop NET_RAW (or ALL) and not add it", patch.build())


@builtin_check(
    id="bp.required-labels",
    title="Required labels",
    severity=Severity.LOW,
    category="Hygiene",
    policy=POLICY_BEST_PRACTICE,
    parameters=(Parameter("labels", "array", [], "Label keys every workload must carry; empty skips the check."),),
    description="Ownership and cost labels let people find who runs what.",
    remediation="Add the missing labels to the workload's metadata.labels.",
)
def required_labels(workload: Workload, params: Params) -> Outcome:
    required: list[str] = params["labels"]
    if not required:
        return skipped("no required labels configured")
    labels = as_dict(workload.metadata.get("labels"))
    missing = [key for key in required if not labels.get(key)]
    if not missing:
        return passed("every required label is set")
    return failed(f"metadata.labels lacks {', '.join(missing)}")


@builtin_check(
    id="bp.not-default-namespace",
    title="Not in the default namespace",
    severity=Severity.LOW,
    category="Hygiene",
    policy=POLICY_BEST_PRACTICE,
    description="The default namespace mixes unrelated workloads under one set of permissions and quotas.",
    remediation="Create a namespace for the application and deploy it there.",
)
def not_default_namespace(workload: Workload, params: Params) -> Outcome:
    namespace = workload.namespace
    if namespace is None:
        return skipped("the object names no namespace")
    if namespace == "default":
        return failed('metadata.namespace is "default"')
    return passed(f'namespace "{namespace}"')


@builtin_check(
    id="bp.automount-service-account-token",
    title="ServiceAccount token not mounted",
    severity=Severity.MEDIUM,
    category="Security",
    policy=POLICY_BEST_PRACTICE,
    parameters=(
        Parameter(
            "service_accounts_using_token",
            "array",
            [],
            "ServiceAccounts whose pods call the Kubernetes API and need the token (the check skips them).",
        ),
    ),
    description="A pod that never calls the Kubernetes API should not carry an API credential an intruder can use.",
    remediation="Set spec.automountServiceAccountToken: false in the pod template (or on its ServiceAccount).",
)
def automount_service_account_token(workload: Workload, params: Params) -> Outcome:
    spec = workload.pod_spec
    if spec.get("automountServiceAccountToken") is False:
        return passed("automountServiceAccountToken is false")
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    if account in params["service_accounts_using_token"]:
        return skipped(f'ServiceAccount "{account}" is declared to use its token')
    fix = workload.patch().set((*workload.pod_spec_path, "automountServiceAccountToken"), False).build()
    return failed(f'pod mounts the token of ServiceAccount "{account}": set automountServiceAccountToken=false', fix)


@builtin_check(
    id="bp.replicas",
    title="More than one replica",
    severity=Severity.LOW,
    category="Reliability",
    policy=POLICY_BEST_PRACTICE,
    parameters=(Parameter("min_replicas", "integer", 2, "The fewest replicas a Deployment or StatefulSet may run."),),
    description="A single replica is down during every node drain, eviction and rollout of a StatefulSet.",
    remediation="Set spec.replicas to 2 or more (and a PodDisruptionBudget), or let an autoscaler own it.",
)
def replicas(workload: Workload, params: Params) -> Outcome:
    if workload.kind not in REPLICATED_KINDS:
        return skipped(f"{workload.kind} has no replica count")
    minimum = int(params["min_replicas"])
    spec = as_dict(workload.obj.get("spec"))
    count = spec.get("replicas", 1)  # the API server's default
    if isinstance(count, int) and count >= minimum:
        return passed(f"spec.replicas is {count}")
    if count == 0:
        return skipped("scaled to zero on purpose")
    fix = workload.patch().set(("spec", "replicas"), minimum).build()
    return failed(f"spec.replicas is {count}, fewer than {minimum}", fix)
