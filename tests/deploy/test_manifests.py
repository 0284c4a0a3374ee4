"""The Kubernetes manifests under deploy/kubernetes are well-formed and consistent with each other.

Structure only (PyYAML); schema validation against a Kubernetes version is ``kubernetes-validate`` (deploy/README.md).
Standalone: needs neither the database nor Redis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
STATIC_DIR = "/var/lib/icc"  # ICC_DATA_DIR in the image: holds the static files collected at build time

Obj = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(path for pattern in ("*.yaml", "*.yml") for path in MANIFESTS.glob(pattern))


def load_objects() -> list[tuple[str, Obj]]:
    """Every Kubernetes object (file name, object), the kustomization itself excluded."""
    objects: list[tuple[str, Obj]] = []
    for path in manifest_files():
        if path == KUSTOMIZATION:
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                objects.append((path.name, document))
    return objects


OBJECTS = load_objects()


def objects_of(kind: str) -> list[Obj]:
    return [obj for _, obj in OBJECTS if obj.get("kind") == kind]


def deployment(name: str) -> Obj:
    matches = [obj for obj in objects_of("Deployment") if obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one Deployment {name}, found {len(matches)}"
    return matches[0]


def pod_specs() -> list[tuple[str, Obj]]:
    """(kind/name, pod spec) of every workload."""
    return [
        (f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"])
        for obj in objects_of("Deployment") + objects_of("Job")
    ]


def containers() -> list[tuple[str, Obj]]:
    return [
        (f"{where}/{container['name']}", container)
        for where, spec in pod_specs()
        for container in spec.get("initContainers", []) + spec["containers"]
    ]


def image_name(image: str) -> str:
    """The image reference without tag or digest."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name


def test_there_are_manifests() -> None:
    assert KUSTOMIZATION.exists()
    kinds = {obj["kind"] for _, obj in OBJECTS}
    expected = {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler", "Job"}
    assert expected | {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds


@pytest.mark.parametrize(("file_name", "obj"), OBJECTS, ids=[f"{f}:{o.get('kind')}" for f, o in OBJECTS])
def test_every_object_has_api_version_kind_and_name(file_name: str, obj: Obj) -> None:
    assert obj.get("apiVersion"), f"{file_name}: no apiVersion"
    assert obj.get("kind"), f"{file_name}: no kind"
    assert (obj.get("metadata") or {}).get("name"), f"{file_name}: no metadata.name"


def test_the_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    present = {path.name for path in manifest_files() if path != KUSTOMIZATION}
    examples = {name for name in present if name.endswith((".example.yaml", ".example.yml"))}
    assert examples, "expected an example Secret (icc-secrets.example.yaml)"
    assert not listed & examples, "example files hold placeholders and must never be applied"
    assert listed == present - examples, f"missing: {present - examples - listed}, unknown: {listed - present}"


def test_every_container_uses_the_same_image() -> None:
    images = {where: container["image"] for where, container in containers()}
    names = {image_name(image) for image in images.values()}
    assert len(names) == 1, f"one image, several roles: {images}"
    assert len(set(images.values())) == 1, f"roles run different tags: {images}"
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert {entry["name"] for entry in kustomization.get("images", [])} == names


@pytest.mark.parametrize(("where", "container"), containers(), ids=[where for where, _ in containers()])
def test_every_container_requests_resources_and_is_locked_down(where: str, container: Obj) -> None:
    requests = (container.get("resources") or {}).get("requests") or {}
    assert {"cpu", "memory"} <= requests.keys(), f"{where}: resources.requests needs cpu and memory"
    assert ((container.get("resources") or {}).get("limits") or {}).get("memory"), f"{where}: no memory limit"
    security = container.get("securityContext") or {}
    assert security.get("allowPrivilegeEscalation") is False, where
    assert security.get("readOnlyRootFilesystem") is True, where
    assert security.get("capabilities", {}).get("drop") == ["ALL"], where
    mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
    assert "/tmp" in mounts, f"{where}: a read-only root filesystem needs a writable /tmp"


@pytest.mark.parametrize(("where", "spec"), pod_specs(), ids=[where for where, _ in pod_specs()])
def test_every_pod_runs_as_non_root(where: str, spec: Obj) -> None:
    security = spec.get("securityContext") or {}
    assert security.get("runAsNonRoot") is True, where
    assert security.get("runAsUser") not in (None, 0), where


def test_web_has_probes_and_keeps_the_static_files_visible() -> None:
    web = deployment("icc-web")["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "iccapp.asgi:application" in web["command"]
    # The image's static files live in ICC_DATA_DIR/static: a volume over that path would hide them.
    for mount in web.get("volumeMounts", []):
        assert not STATIC_DIR.startswith(mount["mountPath"].rstrip("/") + "/"), mount
        assert mount["mountPath"].rstrip("/") != STATIC_DIR, mount


def test_web_probes_send_a_host_django_accepts() -> None:
    """Django answers 400 to a Host outside ALLOWED_HOSTS; kubelet's default Host is the pod IP."""
    (config,) = objects_of("ConfigMap")
    allowed = {host.strip() for host in config["data"]["ALLOWED_HOSTS"].split(",")}
    web = deployment("icc-web")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe not in web:
            continue
        headers = {h["name"].lower(): h["value"] for h in web[probe]["httpGet"].get("httpHeaders", [])}
        assert headers.get("host") in allowed, f"{probe} Host {headers.get('host')!r} not in ALLOWED_HOSTS {allowed}"


def test_worker_runs_the_celery_worker_and_beat_runs_an_elected_standby() -> None:
    worker = deployment("icc-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"][:4] == ["celery", "-A", "iccapp", "worker"]
    beat = deployment("icc-beat")
    assert beat["spec"]["replicas"] == 2  # the "beat" lease elects the one that sends (apps.core.beat)
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][:4] == ["celery", "-A", "iccapp", "beat"]


def test_the_watcher_runs_icc_watch_with_a_standby_replica() -> None:
    watcher = deployment("icc-watcher")
    assert watcher["spec"]["replicas"] >= 2  # leases: one holder per cluster, the other takes over
    assert watcher["spec"]["template"]["spec"]["containers"][0]["command"][:3] == ["python", "manage.py", "icc_watch"]


def test_the_cron_scheduler_runs_two_leaderless_replicas() -> None:
    scheduler = deployment("icc-cron-scheduler")
    assert scheduler["spec"]["replicas"] >= 2  # runs are unique per slot: no leader needed, either may die
    command = scheduler["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "manage.py", "cron_scheduler"]


def test_autoscalers_target_existing_deployments_that_leave_replicas_to_them() -> None:
    hpas = objects_of("HorizontalPodAutoscaler")
    targets = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in hpas}
    assert set(targets) == {"icc-web", "icc-worker"}
    for name, hpa in targets.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["minReplicas"] >= 2, name
        assert "replicas" not in deployment(name)["spec"], f"{name}: kubectl apply would reset the HPA's count"


def test_the_migration_job_migrates() -> None:
    (job,) = objects_of("Job")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["python", "manage.py", "migrate", "--noinput"]


def test_the_secret_example_holds_placeholders_only() -> None:
    (secret,) = objects_of("Secret")
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ICC_ENCRYPTION_KEYS"} <= values.keys()
    for key, value in values.items():
        assert "REPLACE_ME" in value, f"{key} looks like a real value"


def test_the_cluster_role_reads_scales_restarts_and_deletes_pods_only() -> None:
    (role,) = objects_of("ClusterRole")
    allowed_writes = {
        ("apps", "deployments/scale"): {"update", "patch"},
        ("apps", "statefulsets/scale"): {"update", "patch"},
        ("apps", "deployments"): {"patch"},  # rollout restart: a pod-template annotation
        ("apps", "statefulsets"): {"patch"},
        ("apps", "daemonsets"): {"patch"},
        ("", "pods"): {"delete"},  # one pod recycled at a time (pod_delete), never workloads
        ("authentication.k8s.io", "tokenreviews"): {"create"},
        ("authorization.k8s.io", "selfsubjectaccessreviews"): {"create"},
    }
    for rule in role["rules"]:
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert resource != "secrets", "ICC must not read Secrets cluster-wide"
                writes = set(rule["verbs"]) - {"get", "list", "watch"}
                assert writes <= allowed_writes.get((group, resource), set()), (group, resource, writes)
