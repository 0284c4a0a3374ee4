"""The Helm chart deploy/helm/icc: it lints clean, its schema describes and guards every value, it renders for the
default values and the production example, its workloads pass ICC's own Pod Security Standards restricted checks,
every object validates against a current Kubernetes schema (kubernetes-validate, 1.31) and is accepted by a real
kube-apiserver (v1.20.2) in a server-side dry run, with the apiVersions that server actually serves; and Helm's own
``install --dry-run=server`` against that server picks the same apiVersions from its discovery.

No helm binary: PyPI ``helm-python-sdk`` is Helm's own Go library (v4) behind ctypes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import requests
import yaml
from helm_python import _native
from kubernetes_validate import utils as kubernetes_validate

from apps.compliance.checks import POLICY_RESTRICTED, Status, checks_for_policy, evaluate
from tests.support.kube import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "icc"
PRODUCTION = CHART / "values-production.yaml"
SERVICEMONITOR_CRD = Path(__file__).parent / "data" / "servicemonitor-crd.yaml"
CURRENT_KUBERNETES = "1.31.0"
RELEASE = "icc"

Obj = dict[str, Any]

pytestmark = pytest.mark.timeout(30 * 60)  # the first use of kube_apiserver on a machine builds it (~7 minutes)


def production_values() -> Obj:
    values = yaml.safe_load(PRODUCTION.read_text(encoding="utf-8"))
    assert isinstance(values, dict)
    return values


def render(
    values: Obj | None = None,
    *,
    namespace: str = "icc",
    kube_version: str | None = None,
    api_versions: list[str] | None = None,
) -> list[Obj]:
    """Every object the chart renders (hooks included), like ``helm template --kube-version --api-versions``.

    ``Chart.render`` does not expose the capabilities, so the options go to the library's ``helm_render`` itself;
    the apiVersion tests below show that they arrive.
    """
    options: Obj = {"name": RELEASE, "namespace": namespace, "is_install": True}
    if kube_version:
        options["kube_version"] = kube_version
    if api_versions:
        options["api_versions"] = api_versions
    with helm.Chart.load(CHART) as chart:
        payload = _native.call_string(
            "helm_render", chart._raw(), json.dumps(values) if values else None, json.dumps(options)
        )
    manifests: dict[str, str] = json.loads(payload)
    objects: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def of_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def name_of(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def render_error(values: Obj) -> str:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as caught:
        chart.render(values, name=RELEASE, namespace="icc")
    return str(caught.value)


# --- lint and schema -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, PRODUCTION], ids=["default", "production"])
def test_the_chart_lints_clean(values_file: Path | None) -> None:
    values = production_values() if values_file else None
    report = helm.lint(CHART, values, strict=True, namespace="icc", kube_version=f"v{CURRENT_KUBERNETES}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 1 is information ("icon is recommended")
    assert report["total_charts_linted"] == 1
    assert problems == [] and report["errors"] == [], report


def _schema_node(schema: Obj, path: list[str]) -> Obj | None:
    node: Obj | None = schema
    for key in path:
        if node is None or "properties" not in node:
            return None
        node = node["properties"].get(key)
    return node


def _value_paths(values: Any, schema: Obj, path: list[str]) -> Iterator[list[str]]:
    """Every key of values.yaml, descending only where the schema declares properties (free maps are one value)."""
    for key, value in values.items():
        here = [*path, key]
        yield here
        node = _schema_node(schema, here)
        if isinstance(value, dict) and node is not None and "properties" in node:
            yield from _value_paths(value, schema, here)


def test_every_value_is_described_in_the_schema_and_every_schema_value_has_a_default() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    undescribed = [
        ".".join(path)
        for path in _value_paths(values, schema, [])
        if not (_schema_node(schema, path) or {}).get("description")
        and "properties" not in (_schema_node(schema, path) or {})
    ]
    assert undescribed == [], f"values.yaml keys without a description in values.schema.json: {undescribed}"

    def schema_paths(node: Obj, path: list[str]) -> Iterator[list[str]]:
        for key, child in node.get("properties", {}).items():
            yield [*path, key]
            yield from schema_paths(child, [*path, key])

    value_paths = {".".join(p) for p in _value_paths(values, schema, [])}
    without_default = [".".join(p) for p in schema_paths(schema, []) if ".".join(p) not in value_paths]
    assert without_default == ["global"], without_default
    # Objects the chart owns reject unknown keys, so a typo fails instead of being ignored.
    assert schema["additionalProperties"] is False
    assert all(
        child.get("additionalProperties") is False for child in schema["properties"].values() if "properties" in child
    )


def test_the_defaults_satisfy_the_schema() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.values)
        chart.validate_schema(production_values())


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"web": {"replicas": "three"}}, "at '/web/replicas': got string, want integer"),
        ({"web": {"replcas": 3}}, "at '/web': additional properties 'replcas' not allowed"),
        ({"worker": {"queues": ["default", "nightly"]}}, "/worker/queues/1"),
        ({"config": {"logLevel": "LOUD"}}, "/config/logLevel"),
        ({"service": {"port": 70000}}, "/service/port"),
        ({"worker": {"autoscaling": {"targetCPUUtilizationPercentage": 0}}}, "/worker/autoscaling"),
        ({"web": {"resources": {"requests": {"cpu": "lots"}}}}, "at '/web/resources/requests/cpu'"),
    ],
)
def test_a_bad_value_fails_render_and_lint_naming_it(values: Obj, named: str) -> None:
    assert named in render_error(values)
    report = helm.lint(CHART, values, namespace="icc")
    assert any(named in error for error in report["errors"]), report


@pytest.mark.parametrize(
    ("secret_values", "named"),
    [
        ({"databaseUrl": "mysql://icc:hunter2-s3cret@db:3306/icc"}, "secrets.databaseUrl must be a postgres:// URL"),
        ({"redisUrl": "memcached://:hunter2-s3cret@cache:11211"}, "secrets.redisUrl must be a redis://"),
        ({"encryptionKeys": "hunter2-s3cret"}, "secrets.encryptionKeys must be Fernet keys"),
        ({"secretKey": "hunter2-s3cret"}, "/secrets/secretKey"),
        ({"metricsToken": "hunter2-s3cret"}, "/secrets/metricsToken"),
    ],
)
def test_a_bad_secret_value_is_named_and_never_shown(secret_values: Obj, named: str) -> None:
    message = render_error({"secrets": secret_values})
    assert named in message
    assert "hunter2" not in message


# --- what the chart renders ----------------------------------------------------------------------------------------


def test_the_default_values_render_every_role() -> None:
    objects = render()
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == {f"{RELEASE}-{role}" for role in ("web", "worker", "beat", "cron-scheduler", "watcher")}
    for role in ("beat", "cron-scheduler", "watcher"):
        spec = deployments[f"{RELEASE}-{role}"]["spec"]
        assert spec["replicas"] == 2, role
        assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # The HPAs own the web and worker counts: a replicas field would reset them on every upgrade.
    assert "replicas" not in deployments[f"{RELEASE}-web"]["spec"]
    assert set(of_kind(objects, "HorizontalPodAutoscaler")) == {f"{RELEASE}-web", f"{RELEASE}-worker"}
    assert len(of_kind(objects, "PodDisruptionBudget")) == 5
    assert set(of_kind(objects, "NetworkPolicy")) == {RELEASE, f"{RELEASE}-web", f"{RELEASE}-metrics"}
    assert not of_kind(objects, "Ingress") and not of_kind(objects, "ServiceMonitor")

    web = deployments[f"{RELEASE}-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == web["startupProbe"]["httpGet"]["path"] == "/healthz"
    worker = deployments[f"{RELEASE}-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"][worker["command"].index("-Q") + 1] == "default,reconcile,decisions,cron,analysis"


def _plain_manifests() -> list[Obj]:
    return [
        doc
        for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc and "kind" in doc
    ]


def test_the_chart_runs_the_same_commands_and_grants_the_same_rules_as_the_plain_manifests() -> None:
    """deploy/kubernetes and the chart describe one product: a role command or an RBAC rule changed in one place
    only fails here."""
    plain = _plain_manifests()
    chart = render()
    plain_pods = {o["metadata"]["name"].removeprefix("icc-"): o for o in plain if o["kind"] in ("Deployment", "Job")}
    chart_pods = {
        o["metadata"]["name"].removeprefix(f"{RELEASE}-"): o for o in chart if o["kind"] in ("Deployment", "Job")
    }
    assert set(chart_pods) == set(plain_pods)
    for role, obj in chart_pods.items():
        chart_container = obj["spec"]["template"]["spec"]["containers"][0]
        plain_container = plain_pods[role]["spec"]["template"]["spec"]["containers"][0]
        assert chart_container["command"] == plain_container["command"], role
    plain_rules = next(o for o in plain if o["kind"] == "ClusterRole")["rules"]
    chart_rules = next(o for o in chart if o["kind"] == "ClusterRole")["rules"]
    assert chart_rules == plain_rules
    binding = next(o for o in chart if o["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": "icc"}]


def test_the_migration_is_a_hook_before_install_and_upgrade_and_its_secret_comes_first() -> None:
    objects = render()
    job = of_kind(objects, "Job")[f"{RELEASE}-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # Hooks run before the release's ConfigMap and ServiceAccount exist: the Job needs neither.
    assert "serviceAccountName" not in pod and pod["automountServiceAccountToken"] is False
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["ICC_NAMESPACE"] == "icc" and env["DEBUG"] == "false"
    assert not any("configMapRef" in source for source in pod["containers"][0]["envFrom"])
    secret = of_kind(objects, "Secret")[f"{RELEASE}-secrets"]
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"].get("helm.sh/hook-weight", "0")
    )
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_generated_secrets_are_strong_and_given_ones_are_used() -> None:
    import base64

    data = of_kind(render(), "Secret")[f"{RELEASE}-secrets"]["data"]
    decoded = {key: base64.b64decode(value).decode() for key, value in data.items()}
    assert len(decoded["SECRET_KEY"]) >= 50
    assert len(base64.urlsafe_b64decode(decoded["ICC_ENCRYPTION_KEYS"])) == 32  # a Fernet key
    assert len(decoded["METRICS_TOKEN"]) >= 32
    assert decoded["DATABASE_URL"].startswith("postgres://")

    key = secrets.token_urlsafe(40)
    given = of_kind(render({"secrets": {"secretKey": key}}), "Secret")[f"{RELEASE}-secrets"]["data"]
    assert base64.b64decode(given["SECRET_KEY"]).decode() == key
    # An existing Secret: the chart makes none and every role reads the named one.
    objects = render({"secrets": {"existingSecret": "icc-made-elsewhere"}})
    assert not of_kind(objects, "Secret")
    for deployment in of_kind(objects, "Deployment").values():
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "icc-made-elsewhere"}} in sources


def test_the_production_example_renders_ingress_servicemonitor_and_narrowed_egress() -> None:
    objects = render(production_values(), kube_version=CURRENT_KUBERNETES)
    ingress = of_kind(objects, "Ingress")[RELEASE]
    assert ingress["spec"]["rules"][0]["host"] == "icc.example.com"
    config = of_kind(objects, "ConfigMap")[f"{RELEASE}-config"]["data"]
    assert config["ALLOWED_HOSTS"] == "icc.example.com,localhost"
    assert config["CSRF_TRUSTED_ORIGINS"] == "https://icc.example.com"
    monitor = of_kind(objects, "ServiceMonitor")[RELEASE]
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"] == {
        "name": "icc-secrets",
        "key": "METRICS_TOKEN",
    }
    # Every role with a metrics port sits behind a Service the ServiceMonitor selects, on a port named "metrics".
    selected = [
        service
        for service in of_kind(objects, "Service").values()
        if service["metadata"]["labels"].get("icc.dev/metrics") == "true"
    ]
    assert {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected} == {
        "web",
        "worker",
        "cron-scheduler",
        "watcher",
    }
    assert all(any(p["name"] == "metrics" for p in s["spec"]["ports"]) for s in selected)
    egress = of_kind(objects, "NetworkPolicy")[RELEASE]["spec"]["egress"]
    assert {"ports": [{"port": 6380, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "10.20.1.0/24"}}]} in egress


def test_network_policies_let_in_only_the_ingress_controller_and_prometheus() -> None:
    values = render()
    policies = of_kind(values, "NetworkPolicy")
    everything = policies[RELEASE]["spec"]
    assert everything["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in everything
    egress_ports = sorted(p["port"] for rule in everything["egress"] for p in rule["ports"])
    assert egress_ports == [53, 53, 443, 5432, 6379, 6443, 9090]
    web_from = policies[f"{RELEASE}-web"]["spec"]["ingress"][0]["from"]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in web_from] == [
        "ingress-nginx",
        "prometheus",
    ]
    metrics = policies[f"{RELEASE}-metrics"]["spec"]
    assert metrics["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in metrics["ingress"][0]["from"]] == [
        "prometheus"
    ]


@pytest.mark.parametrize(
    ("kube_version", "pdb", "hpa"),
    [("1.20.2", "policy/v1beta1", "autoscaling/v2beta2"), (CURRENT_KUBERNETES, "policy/v1", "autoscaling/v2")],
)
def test_api_versions_follow_the_kubernetes_version(kube_version: str, pdb: str, hpa: str) -> None:
    objects = render(kube_version=kube_version)
    assert {o["apiVersion"] for o in objects if o["kind"] == "PodDisruptionBudget"} == {pdb}
    assert {o["apiVersion"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"} == {hpa}


def test_a_cluster_that_serves_the_newer_apis_gets_them_whatever_its_reported_version() -> None:
    objects = render(
        kube_version="1.20.2",
        api_versions=["policy/v1/PodDisruptionBudget", "autoscaling/v2/HorizontalPodAutoscaler"],
    )
    assert {o["apiVersion"] for o in objects if o["kind"] in ("PodDisruptionBudget", "HorizontalPodAutoscaler")} == {
        "policy/v1",
        "autoscaling/v2",
    }


@pytest.mark.parametrize("values_file", [None, PRODUCTION], ids=["default", "production"])
def test_every_workload_passes_iccs_restricted_pod_security_checks(values_file: Path | None) -> None:
    objects = render(production_values() if values_file else None)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 6
    checks = checks_for_policy(POLICY_RESTRICTED)
    assert len(checks) >= 15
    failures = [
        f"{name_of(obj)}: {result.check_id}: {result.message}"
        for obj in workloads
        for result in evaluate(obj, checks)
        if result.status != Status.PASS
    ]
    assert failures == []


def test_the_restricted_checks_do_catch_a_weakened_security_context() -> None:
    """The check above could pass vacuously; with escalation allowed and root permitted it must not."""
    weak = {
        "podSecurityContext": {"runAsNonRoot": False},
        "containerSecurityContext": {"allowPrivilegeEscalation": True},
    }
    web = of_kind(render(weak), "Deployment")[f"{RELEASE}-web"]
    failed = {r.check_id for r in evaluate(web, checks_for_policy(POLICY_RESTRICTED)) if r.status == Status.FAIL}
    assert {"pss.restricted.privilege-escalation", "pss.restricted.run-as-non-root"} <= failed


@pytest.mark.parametrize("values_file", [None, PRODUCTION], ids=["default", "production"])
def test_every_object_validates_against_a_current_kubernetes_schema(values_file: Path | None) -> None:
    objects = render(production_values() if values_file else None, kube_version=CURRENT_KUBERNETES)
    problems: list[str] = []
    validated = 0
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, CURRENT_KUBERNETES, strict=True)
            validated += 1
        except kubernetes_validate.SchemaNotFoundError:
            # Custom resources have no schema in kubernetes-validate; the dry run below covers the ServiceMonitor.
            assert obj["kind"] == "ServiceMonitor", name_of(obj)
            print(f"kubernetes-validate: no schema for {name_of(obj)} (a custom resource), skipped")
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(part) for part in exc.path)
            problems.append(f"{name_of(obj)} at {where}: {exc.message}")
    assert problems == []
    assert validated >= 20


def test_the_readme_values_table_is_generated_from_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "helm_values_table.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    assert "| `web.replicas` | integer | `2` |" in readme
    assert "| `worker.queues` | array of string |" in readme


# --- server-side dry run against a real kube-apiserver ---------------------------------------------------------------


class Api:
    """Plain REST against the test API server: discovery, the capabilities Helm would see, dry-run creates."""

    def __init__(self, cluster: KubeCluster) -> None:
        self.base = cluster.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {cluster.token}"
        self.session.verify = str(cluster.ca_path)
        # Not REQUESTS_CA_BUNDLE (which would override verify) nor proxies from the environment: a loopback server.
        self.session.trust_env = False
        self.resources_cache: dict[tuple[str, str], tuple[str, bool]] = {}

    def get(self, path: str) -> Obj:
        response = self.session.get(self.base + path, timeout=10)
        response.raise_for_status()
        body: Obj = response.json()
        return body

    def resources(self) -> dict[tuple[str, str], tuple[str, bool]]:
        """(apiVersion, kind) -> (REST path segment, namespaced), for every served group version."""
        group_versions = ["v1"] + [
            version["groupVersion"] for group in self.get("/apis")["groups"] for version in group["versions"]
        ]
        found: dict[tuple[str, str], tuple[str, bool]] = {}
        for group_version in group_versions:
            prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            for resource in self.get(prefix)["resources"]:
                if "/" not in resource["name"]:  # subresources are not creatable objects
                    found[(group_version, resource["kind"])] = (resource["name"], resource["namespaced"])
        return found

    def capabilities(self) -> tuple[str, list[str]]:
        """The server's version and API versions as ``helm install`` discovers them (group/version and
        group/version/Kind)."""
        served = self.resources()
        versions = sorted({group_version for group_version, _ in served} | {f"{gv}/{kind}" for gv, kind in served})
        return self.get("/version")["gitVersion"], versions

    def create(self, obj: Obj, namespace: str, *, dry_run: bool) -> requests.Response:
        path, namespaced = self.resources_cache[(obj["apiVersion"], obj["kind"])]
        prefix = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        url = f"{self.base}{prefix}/namespaces/{namespace}/{path}" if namespaced else f"{self.base}{prefix}/{path}"
        params = {"fieldManager": "helm-test"}
        if dry_run:
            params["dryRun"] = "All"
        return self.session.post(url, params=params, json=obj, timeout=20)


@pytest.fixture(scope="module")
def apiserver(kube_apiserver: KubeCluster) -> Iterator[tuple[Api, str]]:
    """The test API server with the ServiceMonitor CRD established, and a fresh namespace for the release."""
    api = Api(kube_apiserver)
    api.resources_cache = api.resources()
    crd = yaml.safe_load(SERVICEMONITOR_CRD.read_text(encoding="utf-8"))
    created_crd = False
    if ("monitoring.coreos.com/v1", "ServiceMonitor") not in api.resources_cache:
        response = api.create(crd, "", dry_run=False)
        assert response.status_code in (201, 409), response.text
        created_crd = response.status_code == 201
        deadline = time.monotonic() + 30
        while ("monitoring.coreos.com/v1", "ServiceMonitor") not in api.resources_cache:
            assert time.monotonic() < deadline, "the ServiceMonitor CRD was never served"
            time.sleep(0.2)
            try:
                api.resources_cache = api.resources()
            except requests.HTTPError:
                continue  # the new group version can be listed before it is served
    namespace = f"icc-helm-test-{secrets.token_hex(4)}"
    response = api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, "", dry_run=False)
    assert response.status_code == 201, response.text
    try:
        yield api, namespace
    finally:
        api.session.delete(f"{api.base}/api/v1/namespaces/{namespace}", timeout=10)
        if created_crd:
            api.session.delete(
                f"{api.base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
                timeout=10,
            )


@pytest.mark.parametrize("values_file", [None, PRODUCTION], ids=["default", "production"])
def test_every_object_passes_the_apiservers_server_side_dry_run(
    apiserver: tuple[Api, str], values_file: Path | None
) -> None:
    api, namespace = apiserver
    kube_version, api_versions = api.capabilities()
    assert kube_version.startswith("v1.20.")
    # Rendered with what this server serves, as `helm install` would: it has neither policy/v1 nor autoscaling/v2.
    objects = render(
        production_values() if values_file else None,
        namespace=namespace,
        kube_version=kube_version,
        api_versions=api_versions,
    )
    rejected: list[str] = []
    for obj in objects:
        served = (obj["apiVersion"], obj["kind"]) in api.resources_cache
        assert served, f"{name_of(obj)}: {obj['apiVersion']} is not served by {kube_version}"
        response = api.create(obj, namespace, dry_run=True)
        if response.status_code != 201:
            rejected.append(f"{name_of(obj)}: {response.status_code} {response.json().get('message')}")
    assert rejected == []
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Job", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds
    assert {o["apiVersion"] for o in objects if o["kind"] == "PodDisruptionBudget"} == {"policy/v1beta1"}
    if values_file:
        assert {"Ingress", "ServiceMonitor"} <= kinds
    # A dry run stores nothing.
    assert api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"] == []


@pytest.mark.parametrize("values_file", [None, PRODUCTION], ids=["default", "production"])
def test_helm_itself_installs_with_a_server_dry_run_choosing_the_servers_api_versions(
    kube_apiserver: KubeCluster, apiserver: tuple[Api, str], values_file: Path | None
) -> None:
    """``helm install --dry-run=server``: Helm discovers the server's capabilities (and runs lookup) itself, builds
    every object against the server's API, and stores nothing (memory release storage)."""
    _, namespace = apiserver
    values = production_values() if values_file else None
    with helm.Config(
        kubeconfig_path=kube_apiserver.kubeconfig_path, namespace=namespace, storage_driver="memory"
    ) as cfg:
        release = cfg.install(CHART, RELEASE, values, namespace=namespace, dry_run="server")
    manifest = [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]
    assert {o["apiVersion"] for o in manifest if o["kind"] == "PodDisruptionBudget"} == {"policy/v1beta1"}
    assert {o["apiVersion"] for o in manifest if o["kind"] == "HorizontalPodAutoscaler"} == {"autoscaling/v2beta2"}
    assert len(of_kind(manifest, "Deployment")) == 5
    assert bool(of_kind(manifest, "ServiceMonitor")) == bool(values_file)


def test_the_dry_run_does_reject_an_invalid_object(apiserver: tuple[Api, str]) -> None:
    """The dry run above could pass vacuously; a Deployment whose selector misses its pod labels must fail."""
    api, namespace = apiserver
    web = of_kind(render(namespace=namespace), "Deployment")[f"{RELEASE}-web"]
    web["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "not-web"
    response = api.create(web, namespace, dry_run=True)
    assert response.status_code == 422
    assert "selector" in response.json()["message"]
