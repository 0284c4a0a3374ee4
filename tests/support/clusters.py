"""What tests put into the real control plane (fixtures ``kube``, ``k8s_api``, ``new_namespace``,
``namespace``) and the helpers that deploy, wait, register a cluster with ICC and sync it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.support.components import wait_for
from tests.support.kube import KubeCluster

# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture
def watching() -> Iterator[Callable[[Any], Any]]:
    """``watching(cluster)``: an in-process watcher running until every stream of ``cluster`` is connected;
    stopped at the end of the test."""
    from apps.clusters.kinds import KINDS
    from apps.clusters.models import WatchState
    from apps.clusters.watch import Watcher

    started: list[Any] = []

    def start(cluster: Any) -> Any:
        watcher = Watcher(lease_seconds=3, poll_seconds=0.5).start()
        started.append(watcher)

        def connected() -> bool:
            found = {s.kind: s for s in WatchState.objects.filter(cluster=cluster)}
            return set(found) == set(KINDS) and all(s.connected for s in found.values())

        wait_for("every watch stream of the cluster", connected, timeout=60)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


@pytest.fixture
def shop_and_blog(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str]) -> dict[str, Any]:
    """Applications ``shop`` (ServiceAccount shop-sa) and ``blog`` (blog-sa) in one new namespace, each with one
    ready pod, registered and synced: ``{"cluster", "namespace", "apps": {"shop": …, "blog": …}}``."""
    from apps.clusters.models import Application

    namespace = new_namespace()
    for name in ("shop", "blog"):
        service_account(k8s_api, namespace, f"{name}-sa")
        make_deployment(k8s_api, namespace, f"{name}-web", part_of=name, service_account=f"{name}-sa")
        ready_pods(k8s_api, namespace, f"{name}-web", 1)
    cluster = synced(register(kube))
    apps = {a.name: a for a in Application.objects.filter(cluster=cluster, namespace=namespace)}
    return {"cluster": cluster, "namespace": namespace, "apps": apps}


@pytest.fixture
def kube(kube_apiserver: KubeCluster) -> KubeCluster:
    return kube_apiserver


@pytest.fixture
def k8s_api(kube: KubeCluster) -> Iterator[k8s.ApiClient]:
    """An admin client of the real control plane, closed after the test."""
    api = kube.api_client()
    yield api
    api.close()


@pytest.fixture
def api(k8s_api: k8s.ApiClient) -> k8s.ApiClient:
    """``k8s_api`` under the short name the control-plane tests use."""
    return k8s_api


@pytest.fixture
def new_namespace(k8s_api: k8s.ApiClient) -> Iterator[Callable[[], str]]:
    """Make unique namespaces in the real cluster (deleted at the end)."""
    made: list[str] = []

    def make() -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        create_namespace(k8s_api, name, labels={"icc-test": "yes"})
        made.append(name)
        return name

    yield make
    for name in made:
        delete_namespace(k8s_api, name)


@pytest.fixture
def namespace(new_namespace: Callable[[], str]) -> str:
    """A fresh namespace for the test (deleted afterwards, with everything in it)."""
    return new_namespace()


# --- namespaces and Deployments -----------------------------------------------------------------------------------


def create_namespace(api: k8s.ApiClient, name: str, labels: dict[str, str] | None = None) -> None:
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels=labels)))


def delete_namespace(api: k8s.ApiClient, name: str) -> None:
    """Delete a namespace with everything in it; one already gone is fine."""
    try:
        k8s.CoreV1Api(api).delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def deployment_manifest(
    name: str,
    *,
    replicas: int = 1,
    part_of: str = "",
    image: str = "registry.example/shop:1.0",
    containers: tuple[str, ...] = ("app",),
    service_account: str | None = None,
    grace_seconds: int | None = None,
) -> k8s.V1Deployment:
    """A Deployment selecting its pods by ``app=<name>``, part of application ``part_of`` when given."""
    selector = {"app": name}
    labels = {**selector, **({"app.kubernetes.io/part-of": part_of} if part_of else {})}
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name, labels=labels),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels=selector),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    service_account_name=service_account,
                    containers=[k8s.V1Container(name=c, image=image) for c in containers],
                    termination_grace_period_seconds=grace_seconds,
                ),
            ),
        ),
    )


def make_deployment(api: k8s.ApiClient, namespace: str, name: str, **manifest: Any) -> None:
    """Create ``deployment_manifest(name, **manifest)`` in ``namespace``."""
    k8s.AppsV1Api(api).create_namespaced_deployment(namespace, deployment_manifest(name, **manifest))


def deployment_body(
    name: str, image: str, *, replicas: int = 1, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Deployment as a plain body: its own ``labels`` on the object only, pods selected by ``icc-test/app``."""
    selector = {"icc-test/app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


def deployment_settled(apps: k8s.AppsV1Api, namespace: str, name: str) -> bool:
    """The controller saw the latest spec and every replica is updated, ready and available."""
    d = apps.read_namespaced_deployment_status(name, namespace)
    want = d.spec.replicas
    s = d.status
    return bool(
        (s.observed_generation or 0) >= d.metadata.generation
        and (s.replicas or 0) == want
        and (s.updated_replicas or 0) == want
        and (s.ready_replicas or 0) == want
        and (s.available_replicas or 0) == want
    )


def is_ready(pod: k8s.V1Pod) -> bool:
    conditions = {c.type: c.status for c in pod.status.conditions or []}
    return pod.status.phase == "Running" and conditions.get("Ready") == "True"


def ready_pods(api: k8s.ApiClient, namespace: str, app: str, count: int, timeout: float = 60) -> list[k8s.V1Pod]:
    """Wait until ``count`` pods of ``app`` run and are ready (scheduler, controller-manager, fake node)."""

    def check() -> list[k8s.V1Pod] | None:
        pods = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        ready = [p for p in live if is_ready(p)]
        return ready if len(ready) == count == len(live) else None

    return wait_for(f"{count} ready pod(s) of {namespace}/{app}", check, timeout=timeout)  # type: ignore[no-any-return]


def wait_deployment_ready(
    apps_api: k8s.AppsV1Api, namespace: str, name: str, replicas: int, timeout: float = 60
) -> None:
    """Wait until the Deployment reports exactly ``replicas`` replicas, all ready."""

    def check() -> bool:
        status = apps_api.read_namespaced_deployment(name, namespace).status
        return (status.ready_replicas or 0) == replicas and (status.replicas or 0) == replicas

    wait_for(f"{namespace}/{name} to have {replicas} ready replicas", check, timeout=timeout, interval=0.2)


# --- ServiceAccounts and their tokens --------------------------------------------------------------------------


def service_account(api: k8s.ApiClient, namespace: str, name: str) -> None:
    k8s.CoreV1Api(api).create_namespaced_service_account(
        namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=name))
    )


def sa_token(
    api: k8s.ApiClient, namespace: str, name: str, *, pod: k8s.V1Pod | None = None, seconds: int = 3600
) -> str:
    """A ServiceAccount token from the TokenRequest API (bound to ``pod`` when given). Two requests in the same
    second give the same token (no unique claim in v1.20) unless their lifetimes differ."""
    bound = (
        k8s.V1BoundObjectReference(api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid)
        if pod is not None
        else None
    )
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds, bound_object_ref=bound)
    )
    token: str = k8s.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request).status.token
    return token


READ_RULES = [
    k8s.V1PolicyRule(api_groups=[""], resources=["namespaces", "nodes", "pods", "events"], verbs=["list", "watch"]),
    k8s.V1PolicyRule(
        api_groups=["apps"], resources=["deployments", "statefulsets", "daemonsets"], verbs=["list", "watch"]
    ),
    k8s.V1PolicyRule(api_groups=["batch"], resources=["jobs"], verbs=["list", "watch"]),
]


def service_account_token(kube: KubeCluster, *, rules: list[Any] | None = None, name: str = "") -> str:
    """A new ServiceAccount's token in ``default``, the account bound to a ClusterRole of the same ``name`` with
    ``rules`` (``V1PolicyRule`` or plain dicts) when given."""
    api = kube.api_client()
    rbac = k8s.RbacAuthorizationV1Api(api)
    name = name or f"sa-{uuid.uuid4().hex[:8]}"
    try:
        service_account(api, "default", name)
        if rules:
            rbac.create_cluster_role(k8s.V1ClusterRole(metadata=k8s.V1ObjectMeta(name=name), rules=rules))
            rbac.create_cluster_role_binding(
                k8s.V1ClusterRoleBinding(
                    metadata=k8s.V1ObjectMeta(name=name),
                    role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
                    subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=name, namespace="default")],
                )
            )
        return sa_token(api, "default", name)
    finally:
        api.close()


# --- the cluster registered with ICC -----------------------------------------------------------------------------


def register(kube: KubeCluster, **overrides: Any) -> Any:
    """Register the real cluster with ICC (token auth) as a fresh, request-less caller."""
    from apps.clusters import services
    from apps.core import context

    context.start()  # called outside a request: forget the previous request's user
    args: dict[str, Any] = {
        "name": f"c-{uuid.uuid4().hex[:8]}",
        "auth_mode": "token",
        "api_url": kube.url,
        "token": kube.token,
        "ca_data": kube.ca_path.read_text(),
    }
    args.update(overrides)
    return services.cluster_register(**args)


def synced(cluster: Any) -> Any:
    """``cluster`` after a full sync, refreshed."""
    from apps.clusters import sync

    sync.full_sync(cluster.pk)
    cluster.refresh_from_db()
    return cluster


@dataclass
class Deployed:
    """A registered, synced cluster whose namespaces each run one application."""

    kube: KubeCluster
    cluster: Any
    core: k8s.CoreV1Api
    apps: k8s.AppsV1Api
    namespaces: dict[str, str] = field(default_factory=dict)  # application name -> its namespace

    def application(self, name: str) -> Any:
        from apps.clusters.models import Application

        return Application.objects.get(cluster=self.cluster, namespace=self.namespaces[name], name=name)

    def sync(self) -> None:
        from apps.clusters import sync

        result = sync.full_sync(self.cluster.pk)
        assert not result.skipped, result.skipped


@contextmanager
def deployed(kube: KubeCluster, cluster_name: str, **applications: tuple[str, str, int]) -> Iterator[Deployed]:
    """Deploy each application (``name=(namespace, deployment, replicas)``) into its own new namespace, wait for
    its pods, then register the cluster as ``cluster_name`` and sync it; the namespaces go at the end."""
    api = kube.api_client()
    core, apps_api = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    for namespace, _, _ in applications.values():
        create_namespace(api, namespace)
    try:
        for app, (namespace, name, replicas) in applications.items():
            make_deployment(
                api,
                namespace,
                name,
                replicas=replicas,
                part_of=app,
                containers=("web",),
                image="registry.local/web:1.0",
            )
        for namespace, name, replicas in applications.values():
            wait_deployment_ready(apps_api, namespace, name, replicas)
        world = Deployed(kube, register(kube, name=cluster_name), core, apps_api)
        world.namespaces = {app: namespace for app, (namespace, _, _) in applications.items()}
        world.sync()
        yield world
    finally:
        for namespace, _, _ in applications.values():
            delete_namespace(api, namespace)


def running_job_pod(core: k8s.CoreV1Api, namespace: str, job: str) -> str:
    """The name of a Job's pod once the fake node runs it (the Job controller labels it ``job-name``)."""

    def find() -> str | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        return next((p.metadata.name for p in pods if p.status.phase == "Running"), None)

    name: str = wait_for(f"a running pod of Job {job}", find, timeout=90)
    return name


@contextmanager
def recording(signal: Any) -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``signal`` sent inside the block (from any thread), in order."""
    import threading

    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def receiver(sender: Any, **kwargs: Any) -> None:
        with lock:
            seen.append({k: v for k, v in kwargs.items() if k != "signal"})

    uid = f"tests.recording.{id(seen)}"
    signal.connect(receiver, weak=False, dispatch_uid=uid)
    try:
        yield seen
    finally:
        signal.disconnect(dispatch_uid=uid)
