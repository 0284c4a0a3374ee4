"""The clusters and applications pages through the Django test client, against a real kube-apiserver.

A real cluster is registered and fully synced; its Deployments run (scheduled, and made Running/Ready by the
simulated node). The pages must show that data, scoped to each persona; the forms must refuse bad input
naming the field, without echoing a secret back; and the Scale / Restart buttons must change the real
Deployment.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.clusters import sync
from apps.clusters.models import Application, Cluster, ClusterStatus, Pod, Workload
from apps.core import topics
from tests.support.clients import html, with_binding
from tests.support.clients import logged_in as client_for
from tests.support.clusters import Deployed, create_namespace, deployed, make_deployment, wait_deployment_ready
from tests.support.kube import KubeCluster

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]

# --- the real cluster's contents -----------------------------------------------------------------------------


class World(Deployed):
    """Application ``shop`` (Deployment ``web``, 2 replicas) and ``billing`` (Deployment ``api``, 1 replica)."""

    @property
    def shop_ns(self) -> str:
        return self.namespaces["shop"]

    @property
    def other_ns(self) -> str:
        return self.namespaces["billing"]

    def app(self, namespace: str) -> Application:
        return Application.objects.get(cluster=self.cluster, namespace=namespace)


@pytest.fixture
def world(kube_apiserver: KubeCluster) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:8]
    apps = {"shop": (f"t-shop-{suffix}", "web", 2), "billing": (f"t-other-{suffix}", "api", 1)}
    with deployed(kube_apiserver, f"c-{suffix}", **apps) as world:
        yield World(**vars(world))


@pytest.fixture
def shop_viewer(make_user: Any, world: World) -> Any:
    """A viewer bound to the shop namespace of the registered cluster only."""
    return with_binding(make_user("nina-namespace"), "viewer", world.cluster, namespace=world.shop_ns)


def flat_kubeconfig(
    kube: KubeCluster,
    *,
    contexts: tuple[str, ...] = ("icc-test",),
    current: str = "",
    user: dict[str, Any] | None = None,
    server: str = "",
) -> str:
    """A flattened kubeconfig (CA embedded) for the test cluster, with one or more contexts."""
    ca = base64.b64encode(kube.ca_path.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "k", "cluster": {"server": server or kube.url, "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": user or {"token": kube.token}}],
        "contexts": [{"name": name, "context": {"cluster": "k", "user": "admin"}} for name in contexts],
    }
    if current:
        config["current-context"] = current
    return json.dumps(config)


# --- pages with the real data --------------------------------------------------------------------------------


def test_cluster_pages_show_the_real_cluster(world: World, admin_persona: Any) -> None:
    c = client_for(admin_persona)
    world.cluster.refresh_from_db()
    assert world.cluster.status == ClusterStatus.CONNECTED

    page = html(c.get("/clusters/"))
    assert f">{world.cluster.name}<" in page
    assert 'data-status="connected"' in page
    assert "v1.20.2" in page
    assert 'id="register-cluster"' in page
    assert 'ws-connect="/ws/?topics=clusters"' in page
    nodes = Cluster.objects.get(pk=world.cluster.pk).nodes.count()
    assert nodes >= 1
    assert f"<td data-nodes>{nodes}</td>" in page

    assert f">{world.cluster.name}<" not in html(c.get("/clusters/?status=unreachable"))
    assert f">{world.cluster.name}<" in html(c.get(f"/clusters/?q={world.cluster.name[2:]}"))
    assert f">{world.cluster.name}<" not in html(c.get("/clusters/?q=no-such-cluster-name"))

    detail = html(c.get(f"/clusters/{world.cluster.pk}/"))
    assert 'data-node="icc-node-1"' in detail
    assert f'data-namespace="{world.shop_ns}"' in detail
    assert f'data-workload="{world.shop_ns}/web"' in detail
    assert f'data-workload="{world.other_ns}/api"' in detail
    assert 'id="sync-now"' in detail
    assert "clusters.cluster.register" in detail  # the audit history panel
    assert f"clusters.cluster.{world.cluster.pk}%2Caudit.history.clusters-cluster.{world.cluster.pk}" in detail

    filtered = html(c.get(f"/clusters/{world.cluster.pk}/workloads/?namespace={world.shop_ns}"))
    assert f'data-workload="{world.shop_ns}/web"' in filtered
    assert f'data-workload="{world.other_ns}/api"' not in filtered
    assert "No workloads match" in html(c.get(f"/clusters/{world.cluster.pk}/workloads/?q=zzz-nothing"))


def test_application_pages_show_workloads_pods_and_versions(world: World, admin_persona: Any) -> None:
    c = client_for(admin_persona)
    shop = world.app(world.shop_ns)
    assert shop.name == "shop"

    listing = html(c.get(f"/clusters/applications/?namespace={world.shop_ns}"))
    assert f'id="application-row-{shop.pk}"' in listing
    assert "<td data-pods>2 / 2" in listing
    assert 'data-colour="green"' in listing
    assert f'id="application-row-{world.app(world.other_ns).pk}"' not in listing
    assert f'id="application-row-{shop.pk}"' not in html(c.get("/clusters/applications/?q=no-such-app"))

    page = html(c.get(f"/clusters/applications/{shop.pk}/"))
    assert page.count('data-colour="green" aria-label=') == 2  # two ready pods, two green tiles
    pod = Pod.objects.filter(application=shop).first()
    assert pod is not None
    assert f'data-pod="{pod.name}"' in page
    assert "node icc-node-1" in page  # the tooltip names the node
    assert 'data-workload="web"' in page
    assert "registry.local/web:1.0" in page
    assert 'data-version="' in page  # the first version of the Deployment
    assert 'id="workload-actions"' in page  # a superuser may act
    assert f"clusters.application.{shop.pk}%2Caudit.history.clusters-application.{shop.pk}" in page


def test_a_failing_pod_turns_red_and_the_application_too(world: World, admin_persona: Any) -> None:
    pod = Pod.objects.filter(application=world.app(world.shop_ns)).order_by("name").first()
    assert pod is not None
    assert world.kube.node is not None
    world.kube.node.set_container_state(world.shop_ns, pod.name, "web", "waiting", "CrashLoopBackOff", 4)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        world.sync()
        pod.refresh_from_db()
        if pod.reason == "CrashLoopBackOff":
            break
        time.sleep(0.3)
    assert pod.reason == "CrashLoopBackOff"
    c = client_for(admin_persona)
    page = html(c.get(f"/clusters/applications/{pod.application_id}/"))
    assert 'data-colour="red" aria-label="' in page
    assert "CrashLoopBackOff · restarts 4" in page
    listing = html(c.get(f"/clusters/applications/?namespace={world.shop_ns}"))
    assert "1 failing" in listing
    assert 'data-colour="red"' in listing
    world.kube.node.set_container_state(world.shop_ns, pod.name, "web", "running", restart_count=4)


# --- scoping --------------------------------------------------------------------------------------------------


def test_a_namespace_viewer_sees_only_that_namespace(world: World, shop_viewer: Any) -> None:
    c = client_for(shop_viewer)
    shop, billing = world.app(world.shop_ns), world.app(world.other_ns)

    listing = html(c.get("/clusters/applications/"))
    assert f'id="application-row-{shop.pk}"' in listing
    assert f'id="application-row-{billing.pk}"' not in listing
    assert world.other_ns not in listing  # not even in the namespace filter

    assert c.get(f"/clusters/applications/{shop.pk}/").status_code == 200
    assert c.get(f"/clusters/applications/{billing.pk}/").status_code == 404
    assert 'id="workload-actions"' not in html(c.get(f"/clusters/applications/{shop.pk}/"))
    # The cluster row itself is cluster-wide: a namespace binding does not reach it.
    assert c.get(f"/clusters/{world.cluster.pk}/").status_code == 404
    assert world.cluster.name not in html(c.get("/clusters/"))
    assert 'id="register-cluster"' not in html(c.get("/clusters/"))

    dashboard = html(c.get("/fragments/dashboard/counters/"))
    assert '<p class="icc-counter-value" id="counter-workloads">1</p>' in dashboard
    assert '<p class="icc-counter-value" id="counter-pods">2</p>' in dashboard
    assert '<p class="icc-counter-value" id="counter-applications">1</p>' in dashboard
    assert '<p class="icc-counter-value" id="counter-clusters">0</p>' in dashboard

    web = Workload.objects.get(cluster=world.cluster, namespace=world.shop_ns, name="web")
    response = c.post(f"/clusters/applications/{shop.pk}/workloads/{web.pk}/scale/", {"replicas": 5, "reason": "try"})
    assert response.status_code == 403
    assert world.apps.read_namespaced_deployment("web", world.shop_ns).spec.replicas == 2


def test_live_topics_follow_read_rights_and_render_per_viewer(
    world: World, shop_viewer: Any, operator_persona: Any
) -> None:
    shop, billing = world.app(world.shop_ns), world.app(world.other_ns)
    nina, otto = shop_viewer.user, operator_persona.user
    assert topics.lookup(f"clusters.application.{shop.pk}").authorize(nina, f"clusters.application.{shop.pk}")
    assert not topics.lookup(f"clusters.application.{billing.pk}").authorize(nina, f"clusters.application.{billing.pk}")
    assert not topics.lookup(f"clusters.cluster.{world.cluster.pk}").authorize(
        nina, f"clusters.cluster.{world.cluster.pk}"
    )
    assert topics.lookup(f"clusters.cluster.{world.cluster.pk}").authorize(otto, f"clusters.cluster.{world.cluster.pk}")
    assert topics.lookup("clusters.applications").authorize(nina, "clusters.applications")

    topic = topics.lookup(f"clusters.application.{shop.pk}")
    assert topic is not None
    as_viewer = topic.render(nina, f"clusters.application.{shop.pk}", {"kind": "pods"})
    assert 'id="pod-grid" hx-swap-oob="true"' in as_viewer
    assert as_viewer.count('data-colour="green" aria-label=') == 2
    assert "/logs/" not in as_viewer  # a viewer gets no log links
    assert "/logs/" in topic.render(otto, f"clusters.application.{shop.pk}", {"kind": "pods"})
    assert 'id="application-workloads"' not in as_viewer  # a pod event re-renders the pods only

    cluster_topic = topics.lookup(f"clusters.cluster.{world.cluster.pk}")
    assert cluster_topic is not None
    fragment = cluster_topic.render(otto, f"clusters.cluster.{world.cluster.pk}", {"snapshot": True})
    assert 'id="cluster-health" hx-swap-oob="true"' in fragment
    assert 'id="cluster-workloads-refresh" hx-swap-oob="true"' in fragment  # the table re-fetches with its filters
    listing = topics.lookup("clusters.applications")
    assert listing is not None
    assert 'hx-get="/clusters/applications/table/"' in listing.render(nina, "clusters.applications", {})


# --- actions ----------------------------------------------------------------------------------------------------


def test_scale_and_restart_from_the_page_change_the_real_deployment(world: World, operator_persona: Any) -> None:
    c = client_for(operator_persona)
    shop = world.app(world.shop_ns)
    web = Workload.objects.get(cluster=world.cluster, namespace=world.shop_ns, name="web")
    assert 'id="workload-actions"' in html(c.get(f"/clusters/applications/{shop.pk}/"))

    missing = c.post(f"/clusters/applications/{shop.pk}/workloads/{web.pk}/scale/", {"replicas": 3, "reason": ""})
    assert missing.status_code == 400
    assert 'data-error-for="reason">This field is required.' in html(missing)
    negative = c.post(f"/clusters/applications/{shop.pk}/workloads/{web.pk}/scale/", {"replicas": -1, "reason": "x"})
    assert negative.status_code == 400
    assert 'data-error-for="replicas">' in html(negative)
    assert world.apps.read_namespaced_deployment("web", world.shop_ns).spec.replicas == 2

    done = c.post(f"/clusters/applications/{shop.pk}/workloads/{web.pk}/scale/", {"replicas": 3, "reason": "load test"})
    assert done.status_code == 302, html(done)
    assert world.apps.read_namespaced_deployment("web", world.shop_ns).spec.replicas == 3
    event = AuditEvent.objects.filter(action="clusters.workload.scale", target_id=str(web.pk)).latest("seq")
    assert event.message == "load test"
    assert (event.actor_name, event.actor_id) == (operator_persona.username, str(operator_persona.user.pk))
    after = html(c.get(done["Location"]))
    assert "scaled from 2 to 3" in after
    assert "clusters.workload.scale" in after  # the workload's history panel on the application page
    assert f"audit.history.clusters-workload.{web.pk}" in after  # and it is live

    restarted = c.post(f"/clusters/applications/{shop.pk}/workloads/{web.pk}/restart/", {"reason": "new config"})
    assert restarted.status_code == 302
    template = world.apps.read_namespaced_deployment("web", world.shop_ns).spec.template
    assert "kubectl.kubernetes.io/restartedAt" in (template.metadata.annotations or {})
    assert AuditEvent.objects.filter(action="clusters.workload.restart", target_id=str(web.pk)).exists()


def test_a_viewer_sees_no_buttons_and_is_refused(world: World, viewer_persona: Any) -> None:
    c = client_for(viewer_persona)
    shop = world.app(world.shop_ns)
    web = Workload.objects.get(cluster=world.cluster, namespace=world.shop_ns, name="web")
    pod = Pod.objects.filter(application=shop).first()
    assert pod is not None
    page = html(c.get(f"/clusters/applications/{shop.pk}/"))
    assert 'id="workload-actions"' not in page
    assert "/logs/" not in page
    assert 'id="sync-now"' not in html(c.get(f"/clusters/{world.cluster.pk}/"))

    assert (
        c.post(
            f"/clusters/applications/{shop.pk}/workloads/{web.pk}/scale/", {"replicas": 0, "reason": "x"}
        ).status_code
        == 403
    )
    assert c.post(f"/clusters/applications/{shop.pk}/workloads/{web.pk}/restart/", {"reason": "x"}).status_code == 403
    assert c.get(f"/clusters/applications/{shop.pk}/pods/{pod.pk}/logs/").status_code == 403
    assert c.post(f"/clusters/{world.cluster.pk}/sync/").status_code == 403
    assert c.get(f"/clusters/{world.cluster.pk}/edit/").status_code == 403
    assert c.get(f"/clusters/{world.cluster.pk}/delete/").status_code == 403
    assert c.get("/clusters/new/").status_code == 403
    assert world.apps.read_namespaced_deployment("web", world.shop_ns).spec.replicas == 2
    assert AuditEvent.objects.filter(action="portal.clusters.workload.scale", outcome="denied").exists()


def test_pod_logs_show_the_last_lines(world: World, operator_persona: Any) -> None:
    shop = world.app(world.shop_ns)
    pod = Pod.objects.filter(application=shop).order_by("name").first()
    assert pod is not None and world.kube.node is not None
    world.kube.node.set_logs(world.shop_ns, pod.name, "web", [f"line {i}" for i in range(150)])
    c = client_for(operator_persona)
    page = html(c.get(f"/clusters/applications/{shop.pk}/pods/{pod.pk}/logs/"))
    assert "line 149" in page
    assert "line 50\n" in page
    assert "line 49\n" not in page  # the last 100 lines only
    assert "line 140" in html(c.get(f"/clusters/applications/{shop.pk}/pods/{pod.pk}/logs/?tail_lines=10"))
    assert "line 139\n" not in html(c.get(f"/clusters/applications/{shop.pk}/pods/{pod.pk}/logs/?tail_lines=10"))
    bad = c.get(f"/clusters/applications/{shop.pk}/pods/{pod.pk}/logs/?container=nope")
    assert bad.status_code == 400
    assert "no container &#x27;nope&#x27;" in html(bad)
    assert AuditEvent.objects.filter(action="clusters.pod.logs", target_id=str(pod.pk)).exists()


def test_sync_now_queues_a_full_sync(world: World, operator_persona: Any) -> None:
    r = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    r.delete("reconcile")
    response = client_for(operator_persona).post(f"/clusters/{world.cluster.pk}/sync/")
    assert response.status_code == 302
    messages = [json.loads(m) for m in r.lrange("reconcile", 0, -1)]
    queued = [m for m in messages if m["headers"]["task"] == "clusters.full_sync"]
    assert queued, messages
    assert str(world.cluster.pk) in queued[-1]["headers"]["argsrepr"]


# --- registration and its errors ------------------------------------------------------------------------------


def test_register_refuses_bad_kubeconfigs_naming_the_field(kube_apiserver: KubeCluster, admin_persona: Any) -> None:
    c = client_for(admin_persona)
    base = {"name": "bad-kubeconfig", "auth_mode": "kubeconfig"}

    not_yaml = "apiVersion: v1\nclusters: [unclosed\n  secret-token-xyz"
    response = c.post("/clusters/new/", {**base, "kubeconfig": SimpleUploadedFile("k.yaml", not_yaml.encode())})
    assert response.status_code == 400
    assert 'data-error-for="kubeconfig">not valid YAML' in html(response)
    assert "secret-token-xyz" not in html(response)

    unknown = c.post("/clusters/new/", {**base, "kubeconfig_text": flat_kubeconfig(kube_apiserver), "context": "nope"})
    assert unknown.status_code == 400
    assert "no context named &#x27;nope&#x27;; the kubeconfig has: icc-test" in html(unknown)
    assert kube_apiserver.token not in html(unknown)

    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws"}}
    plugin = c.post("/clusters/new/", {**base, "kubeconfig_text": flat_kubeconfig(kube_apiserver, user=exec_user)})
    assert plugin.status_code == 400
    assert "exec credential plugin (&#x27;aws&#x27;)" in html(plugin)

    plain = flat_kubeconfig(kube_apiserver, server="http://127.0.0.1:1")
    http = c.post("/clusters/new/", {**base, "kubeconfig_text": plain})
    assert http.status_code == 400
    assert "is not HTTPS" in html(http)
    assert not Cluster.objects.filter(name="bad-kubeconfig").exists()


def test_register_refuses_bad_tokens_and_never_echoes_them(
    kube_apiserver: KubeCluster, admin_persona: Any, caplog: pytest.LogCaptureFixture
) -> None:
    c = client_for(admin_persona)
    ca = kube_apiserver.ca_path.read_text()
    base = {"name": "tok", "description": "kept description", "auth_mode": "token", "ca_data": ca}

    http = c.post("/clusters/new/", {**base, "api_url": "http://127.0.0.1:1", "token": "abc-secret-1"})
    assert http.status_code == 400
    page = html(http)
    assert 'data-error-for="api_url">http://127.0.0.1:1 is not HTTPS' in page
    assert "abc-secret-1" not in page
    assert 'value="kept description"' in page  # the rest of the input is kept
    assert 'id="reenter-secrets"' in page

    caplog.set_level(logging.DEBUG)
    wrong = c.post("/clusters/new/", {**base, "api_url": kube_apiserver.url, "token": "wrong-token-value-123"})
    assert wrong.status_code == 400
    page = html(wrong)
    assert 'data-error-for="token">' in page
    assert "401 Unauthorized — the API server rejected the credentials" in page
    assert "wrong-token-value-123" not in page
    assert "wrong-token-value-123" not in caplog.text
    assert "BEGIN CERTIFICATE" not in page  # nor the CA bundle
    assert not Cluster.objects.filter(name="tok").exists()

    ok = c.post("/clusters/new/", {**base, "api_url": kube_apiserver.url, "token": kube_apiserver.token})
    assert ok.status_code == 302, html(ok)
    cluster = Cluster.objects.get(name="tok")
    assert ok["Location"] == f"/clusters/{cluster.pk}/"
    assert kube_apiserver.token not in html(c.get(ok["Location"]))
    assert kube_apiserver.token not in caplog.text
    taken = c.post("/clusters/new/", {**base, "api_url": kube_apiserver.url, "token": kube_apiserver.token})
    assert 'data-error-for="name">a cluster named &#x27;tok&#x27; already exists' in html(taken)


def test_a_kubeconfig_with_several_contexts_asks_which_one(kube_apiserver: KubeCluster, admin_persona: Any) -> None:
    c = client_for(admin_persona)
    text = flat_kubeconfig(kube_apiserver, contexts=("staging", "prod"))

    chooser = html(c.post("/clusters/kubeconfig-contexts/", {"kubeconfig_text": text}))
    assert 'value="staging"' in chooser and 'value="prod"' in chooser

    upload = SimpleUploadedFile("config", text.encode())
    first = c.post("/clusters/new/", {"name": "", "auth_mode": "kubeconfig", "kubeconfig": upload})
    assert first.status_code == 400
    page = html(first)
    assert 'data-error-for="name">This field is required.' in page
    assert "this kubeconfig has 2 contexts: choose one" in page
    assert 'name="context" value="staging"' in page and 'name="context" value="prod"' in page
    assert kube_apiserver.token not in page  # the kubeconfig is kept server-side, encrypted, not echoed

    # Second step: the name and the context; the kubeconfig kept from the first step is used.
    second = c.post("/clusters/new/", {"name": "multi", "auth_mode": "kubeconfig", "context": "prod"})
    assert second.status_code == 302, html(second)
    cluster = Cluster.objects.get(name="multi")
    assert cluster.kubeconfig_context == "prod"
    assert cluster.auth_mode == "kubeconfig"


def test_edit_pause_resume_and_delete(world: World, admin_persona: Any) -> None:
    c = client_for(admin_persona)
    pk = world.cluster.pk
    assert c.get(f"/clusters/{pk}/edit/").status_code == 200
    edited = c.post(f"/clusters/{pk}/edit/", {"description": "the test cluster", "sync_interval_seconds": 120})
    assert edited.status_code == 302, html(edited)
    world.cluster.refresh_from_db()
    assert (world.cluster.description, world.cluster.sync_interval_seconds) == ("the test cluster", 120)

    bad = c.post(
        f"/clusters/{pk}/edit/",
        {
            "description": "x",
            "sync_interval_seconds": 120,
            "replace_credentials": "on",
            "auth_mode": "token",
            "api_url": world.kube.url,
            "token": "not-the-token",
            "ca_data": world.kube.ca_path.read_text(),
        },
    )
    assert bad.status_code == 400
    assert "401 Unauthorized" in html(bad)
    assert "not-the-token" not in html(bad)

    assert c.post(f"/clusters/{pk}/pause/", {"reason": ""}).status_code == 302
    world.cluster.refresh_from_db()
    assert not world.cluster.paused  # no reason, no pause
    assert c.post(f"/clusters/{pk}/pause/", {"reason": "maintenance"}).status_code == 302
    world.cluster.refresh_from_db()
    assert world.cluster.paused and world.cluster.status == ClusterStatus.PAUSED
    assert 'data-status="paused"' in html(c.get("/clusters/"))
    assert c.post(f"/clusters/{pk}/resume/", {"reason": "done"}).status_code == 302
    world.cluster.refresh_from_db()
    assert not world.cluster.paused

    confirm = html(c.get(f"/clusters/{pk}/delete/"))
    workloads = Workload.objects.filter(cluster_id=pk).count()
    assert f"<li><strong>{workloads}</strong> workloads</li>" in confirm
    assert f"<li><strong>{Pod.objects.filter(cluster_id=pk).count()}</strong> pods</li>" in confirm
    wrong = c.post(f"/clusters/{pk}/delete/", {"confirm": "not-the-name"})
    assert wrong.status_code == 400
    assert f"type the cluster&#x27;s name ({world.cluster.name}) to confirm" in html(wrong)
    assert Cluster.objects.filter(pk=pk).exists()
    gone = c.post(f"/clusters/{pk}/delete/", {"confirm": world.cluster.name, "reason": "test over"})
    assert gone.status_code == 302
    assert not Cluster.objects.filter(pk=pk).exists()
    assert not Workload.objects.filter(cluster_id=pk).exists()
    assert c.get(f"/clusters/{pk}/").status_code == 404


def test_list_pages_do_not_query_per_row(world: World, admin_persona: Any) -> None:
    """One application or two, one cluster's workloads or all: the same number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = client_for(admin_persona)
    c.get("/clusters/applications/")  # warm the session and caches

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert c.get(url).status_code == 200
        return len(captured.captured_queries)

    one, both = (
        queries(f"/clusters/applications/?namespace={world.shop_ns}"),
        queries("/clusters/applications/?active=all"),
    )
    assert one == both, (one, both)
    assert both <= 8, both
    filtered = queries(f"/clusters/{world.cluster.pk}/workloads/?namespace={world.shop_ns}")
    assert filtered == queries(f"/clusters/{world.cluster.pk}/workloads/")
    assert queries("/clusters/") <= 10


def test_a_read_only_registration_shows_what_icc_cannot_do_and_the_refusal(
    kube_apiserver: KubeCluster, admin_persona: Any
) -> None:
    """Registered through the form with a ServiceAccount that may only list and watch: the cluster page names
    the missing permissions, and a Scale from the application page shows the API server's 403 as a form error."""
    from tests.support.clusters import READ_RULES, service_account_token

    api = kube_apiserver.api_client()
    core, apps_api = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    namespace = f"t-ro-{uuid.uuid4().hex[:8]}"
    create_namespace(api, namespace)
    try:
        make_deployment(api, namespace, "web", part_of="ro", containers=("web",))
        wait_deployment_ready(apps_api, namespace, "web", 1)
        c = client_for(admin_persona)
        token = service_account_token(kube_apiserver, rules=READ_RULES)
        registered = c.post(
            "/clusters/new/",
            {
                "name": "read-only",
                "auth_mode": "token",
                "api_url": kube_apiserver.url,
                "token": token,
                "ca_data": kube_apiserver.ca_path.read_text(),
            },
        )
        assert registered.status_code == 302, html(registered)
        cluster = Cluster.objects.get(name="read-only")
        sync.full_sync(cluster.pk)
        detail = html(c.get(f"/clusters/{cluster.pk}/"))
        assert 'id="missing-permissions"' in detail
        assert "<code>get, update apps/deployments/scale</code>" in detail

        app = Application.objects.get(cluster=cluster, namespace=namespace, name="ro")
        web = Workload.objects.get(application=app, name="web")
        refused = c.post(
            f"/clusters/applications/{app.pk}/workloads/{web.pk}/scale/", {"replicas": 2, "reason": "more"}
        )
        assert refused.status_code == 502
        errors = [line for line in html(refused).splitlines() if 'class="icc-error" role="alert"' in line]
        # ICC's words, not the API server's: an error message never repeats the body of an answer.
        assert any("deployments/web/scale: HTTP 403 Forbidden" in line and "(RBAC)" in line for line in errors), errors
        assert apps_api.read_namespaced_deployment("web", namespace).spec.replicas == 1

        in_cluster = c.post("/clusters/new/", {"name": "inside", "auth_mode": "in_cluster"})
        assert in_cluster.status_code == 400
        assert 'data-error-for="auth_mode">ICC is not running inside a Kubernetes pod' in html(in_cluster)
    finally:
        core.delete_namespace(namespace)
