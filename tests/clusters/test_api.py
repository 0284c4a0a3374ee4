"""The clusters REST API against a real kube-apiserver: registration, editing, pausing and removal; observed
state scoped by access control (lists, details and counts); filters, search, ordering and cursor pages; and
credentials that never leak into answers, the audit trail, the logs or the admin.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.clusters.models import Application, Cluster, Pod, WarningEvent, Workload
from tests.support.clients import bind, error_fields, results
from tests.support.clients import forced_login as client_for
from tests.support.clients import patch_json as patch
from tests.support.clients import post_json as post
from tests.support.clusters import make_deployment, ready_pods, register, synced
from tests.support.components import wait_for
from tests.support.kube import KubeCluster
from tests.support.rows import cluster_row

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db]

API = "/api/v1"


def warn(api: k8s.ApiClient, namespace: str, deployment: str, reason: str) -> None:
    """A Warning event about a Deployment, as a controller would record it."""
    now = datetime.now(UTC)
    k8s.CoreV1Api(api).create_namespaced_event(
        namespace,
        k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(name=f"{deployment}.{uuid.uuid4().hex[:10]}"),
            involved_object=k8s.V1ObjectReference(kind="Deployment", name=deployment, namespace=namespace),
            reason=reason,
            message=f"{reason} in {deployment}",
            type="Warning",
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=k8s.V1EventSource(component="icc-test"),
        ),
    )


# --- a cluster with two namespaces, each running one application --------------------------------------------


@pytest.fixture
def shop(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str]) -> dict[str, Any]:
    """A registered, synced cluster; namespace ``a`` runs application ``cart`` (2 pods), ``b`` runs ``bank``."""
    a, b = new_namespace(), new_namespace()
    make_deployment(k8s_api, a, "cart-web", replicas=2, part_of="cart")
    make_deployment(k8s_api, b, "bank-api", replicas=1, part_of="bank")
    ready_pods(k8s_api, a, "cart-web", 2)
    ready_pods(k8s_api, b, "bank-api", 1)
    warn(k8s_api, a, "cart-web", "CartTrouble")
    warn(k8s_api, b, "bank-api", "BankTrouble")
    cluster = synced(register(kube))
    return {"cluster": cluster, "a": a, "b": b}


def _pem_body(pem: str) -> str:
    """The base64 body of the first PEM block: what a leak of the CA would contain."""
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return "".join(lines[:3])


# --- registration ---------------------------------------------------------------------------------------------


def test_a_global_admin_registers_a_cluster_and_no_credential_ever_leaks(
    kube, k8s_api, new_namespace, admin_persona, caplog
):
    caplog.set_level(logging.DEBUG)
    namespace = new_namespace()
    make_deployment(k8s_api, namespace, "leak-web", part_of="leak")
    ready_pods(k8s_api, namespace, "leak-web", 1)
    admin = client_for(admin_persona.user)
    ca = kube.ca_path.read_text()
    response = post(
        admin,
        f"{API}/clusters/",
        {
            "name": "leak-test",
            "auth_mode": "token",
            "api_url": kube.url,
            "token": kube.token,
            "ca_data": ca,
            "description": "registered through the API",
            "sync_interval_seconds": 120,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "leak-test" and body["server_version"] == "v1.20.2"
    assert body["status"] == "pending" and body["sync_interval_seconds"] == 120
    assert not {"token", "ca_data", "kubeconfig", "credentials"} & set(body)
    cluster_id = body["id"]
    assert Cluster.objects.get(pk=cluster_id).created_by == admin_persona.user
    synced(Cluster.objects.get(pk=cluster_id))

    # A second cluster from a flattened kubeconfig (its token is the same secret, in another shape).
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {
                "name": "k",
                "cluster": {"server": kube.url, "certificate-authority-data": base64.b64encode(ca.encode()).decode()},
            }
        ],
        "users": [{"name": "u", "user": {"token": kube.token}}],
        "contexts": [{"name": "main", "context": {"cluster": "k", "user": "u"}}],
    }
    response = post(
        admin,
        f"{API}/clusters/",
        {
            "name": "leak-kubeconfig",
            "auth_mode": "kubeconfig",
            "kubeconfig": json.dumps(kubeconfig),
            "context": "main",
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["context"] == "main"

    # Every answer of the clusters API, as the admin sees it.
    app = Application.objects.get(cluster_id=cluster_id, name="leak")
    workload = Workload.objects.get(cluster_id=cluster_id, name="leak-web")
    pod = Pod.objects.filter(cluster_id=cluster_id, namespace=namespace).first()
    assert pod is not None
    paths = [
        f"{API}/clusters/",
        f"{API}/clusters/{cluster_id}/",
        f"{API}/namespaces/",
        f"{API}/nodes/",
        f"{API}/applications/",
        f"{API}/applications/{app.pk}/",
        f"{API}/applications/{app.pk}/versions/",
        f"{API}/workloads/",
        f"{API}/workloads/{workload.pk}/",
        f"{API}/pods/",
        f"{API}/pods/{pod.pk}/",
        f"{API}/warning-events/",
        f"{API}/audit/events/?limit=500",
        f"{API}/schema/",
    ]
    answers = []
    for path in paths:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        answers.append(answer.content.decode())
    response = patch(admin, f"{API}/clusters/{cluster_id}/", {"token": kube.token, "description": "rotated"})
    assert response.status_code == 200, response.content
    answers.append(response.content.decode())
    # Bad input echoes nothing secret either.
    response = patch(admin, f"{API}/clusters/{cluster_id}/", {"token": kube.token + " x"})
    assert response.status_code == 400 and "token" in error_fields(response)
    answers.append(response.content.decode())

    secrets = {"token": kube.token, "CA": _pem_body(ca), "CA (base64)": base64.b64encode(ca.encode()).decode()[:60]}
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert AuditEvent.objects.filter(action="clusters.cluster.register", target_id=str(cluster_id)).exists()
    assert AuditEvent.objects.filter(action="clusters.cluster.update", target_id=str(cluster_id)).exists()
    places = {"API answers": "\n".join(answers), "audit events": audit, "logs": caplog.text}
    from django.apps import apps as django_apps

    if django_apps.is_installed("django.contrib.admin"):
        page = admin.get(f"/admin/clusters/cluster/{cluster_id}/change/")
        if page.status_code != 404:  # the admin registers clusters (apps/clusters/admin.py)
            assert page.status_code == 200
            places["admin change page"] = page.content.decode()
            places["admin list"] = admin.get("/admin/clusters/cluster/").content.decode()
    for what, secret in secrets.items():
        for place, text in places.items():
            assert secret not in text, f"the {what} appears in the {place}"


def test_registration_input_errors_name_the_field(kube, admin_persona):
    admin = client_for(admin_persona.user)
    good = {
        "name": "bad-input",
        "auth_mode": "token",
        "api_url": kube.url,
        "token": kube.token,
        "ca_data": kube.ca_path.read_text(),
    }
    cases = [
        ({"auth_mode": "carrier-pigeon"}, "auth_mode"),
        ({"token": ""}, "token"),
        ({"token": "has spaces in it"}, "token"),
        ({"ca_data": "not a certificate"}, "ca_data"),
        ({"api_url": "ftp://example"}, "api_url"),
        ({"api_url": f"http://127.0.0.1:{kube.url.rsplit(':', 1)[1]}"}, "api_url"),  # plain HTTP without consent
        ({"name": "Not A Slug!"}, "name"),
        ({"sync_interval_seconds": 5}, "sync_interval_seconds"),
        ({"colour": "blue"}, "colour"),
        ({"auth_mode": "kubeconfig", "kubeconfig": "{this: is: not yaml"}, "kubeconfig"),
        ({"auth_mode": "kubeconfig", "kubeconfig": ""}, "kubeconfig"),
        ({"auth_mode": "kubeconfig", "kubeconfig": kube.kubeconfig_path.read_text(), "context": "nope"}, "context"),
        # The test kubeconfig names its CA by file path: ICC needs a flattened one.
        ({"auth_mode": "kubeconfig", "kubeconfig": kube.kubeconfig_path.read_text()}, "kubeconfig"),
        ({"token": "wrong-" + uuid.uuid4().hex}, "token"),  # the API server answers 401
    ]
    for change, field in cases:
        response = post(admin, f"{API}/clusters/", {**good, **change})
        assert response.status_code == 400, (change, response.status_code, response.content)
        assert field in error_fields(response), (change, response.json())
    assert not Cluster.objects.exists()
    response = post(admin, f"{API}/clusters/", {k: v for k, v in good.items() if k != "auth_mode"})
    assert response.status_code == 400 and "auth_mode" in error_fields(response)
    assert "401" in error_fields(post(admin, f"{API}/clusters/", {**good, "token": "x" * 40}))["token"][0]


def test_only_global_admins_register_clusters(kube, make_user, shop):
    payload = {
        "name": "nope",
        "auth_mode": "token",
        "api_url": kube.url,
        "token": kube.token,
        "ca_data": kube.ca_path.read_text(),
    }
    cluster_admin = make_user("cluster-admin")
    bind(cluster_admin.user, "admin", shop["cluster"])
    for person in (make_user("op", role="operator"), make_user("vi", role="viewer"), cluster_admin):
        response = post(client_for(person.user), f"{API}/clusters/", payload)
        assert response.status_code == 403, (person.username, response.content)
    assert Client().post(f"{API}/clusters/", payload, content_type="application/json").status_code == 401
    assert not Cluster.objects.filter(name="nope").exists()


# --- editing, pausing, syncing, removing ------------------------------------------------------------------------


def test_editing_a_cluster_needs_configure_on_it_and_tests_new_credentials(kube, make_user, shop):
    cluster = shop["cluster"]
    path = f"{API}/clusters/{cluster.pk}/"
    viewer, operator, owner = make_user("v", role="viewer"), make_user("o", role="operator"), make_user("owner")
    bind(owner.user, "admin", cluster)
    stranger = make_user("stranger")
    assert patch(client_for(viewer.user), path, {"description": "x"}).status_code == 403
    assert patch(client_for(operator.user), path, {"description": "x"}).status_code == 403
    assert patch(client_for(stranger.user), path, {"description": "x"}).status_code == 404

    editor = client_for(owner.user)
    response = patch(editor, path, {"description": "the shop", "sync_interval_seconds": 600})
    assert response.status_code == 200, response.content
    assert response.json()["description"] == "the shop" and response.json()["sync_interval_seconds"] == 600
    event = AuditEvent.objects.filter(action="clusters.cluster.update", target_id=str(cluster.pk)).latest("seq")
    assert event.actor_name == owner.username and event.changes["description"] == ["", "the shop"]

    stored = bytes(Cluster.objects.get(pk=cluster.pk).credentials)
    response = patch(editor, path, {"token": "revoked-" + uuid.uuid4().hex})
    assert response.status_code == 400 and "token" in error_fields(response)
    assert "401" in response.json()["error"]["message"]
    assert bytes(Cluster.objects.get(pk=cluster.pk).credentials) == stored, "refused credentials are not kept"
    response = patch(editor, path, {"token": kube.token})  # same mode: the CA and URL are kept
    assert response.status_code == 200, response.content
    assert bytes(Cluster.objects.get(pk=cluster.pk).credentials) != stored
    refused = [
        ({"name": "renamed"}, "name"),
        ({"auth_mode": "kubeconfig"}, "kubeconfig"),
        ({"sync_interval_seconds": 1}, "sync_interval_seconds"),
        ({"paused": True}, "paused"),
    ]
    for bad, field in refused:
        response = patch(editor, path, bad)
        assert response.status_code == 400 and field in error_fields(response), (bad, response.content)
    assert client_for(owner.user).put(path, "{}", content_type="application/json").status_code == 405


def test_pause_resume_and_sync_are_audited_and_need_their_rights(make_user, shop):
    cluster = shop["cluster"]
    base = f"{API}/clusters/{cluster.pk}"
    operator = client_for(make_user("op", role="operator").user)
    viewer = client_for(make_user("vi", role="viewer").user)
    admin = client_for(make_user("ad", role="admin").user)

    assert post(viewer, f"{base}/sync/").status_code == 403
    response = post(operator, f"{base}/sync/")
    assert response.status_code == 202 and response.json() == {"status": "queued", "cluster": cluster.pk}
    assert AuditEvent.objects.filter(action="clusters.cluster.sync", target_id=str(cluster.pk)).count() == 1

    assert post(operator, f"{base}/pause/", {"reason": "maintenance"}).status_code == 403
    response = post(admin, f"{base}/pause/", {"reason": "maintenance"})
    assert response.status_code == 200 and response.json()["paused"] is True
    assert response.json()["status"] == "paused"
    event = AuditEvent.objects.get(action="clusters.cluster.pause", target_id=str(cluster.pk))
    assert event.message == "maintenance"
    response = post(operator, f"{base}/sync/")
    assert response.status_code == 409 and "paused" in error_fields(response)
    assert post(admin, f"{base}/pause/", {"reason": 5, "extra": 1}).status_code == 400

    response = post(admin, f"{base}/resume/")
    assert response.status_code == 200 and response.json()["paused"] is False
    assert AuditEvent.objects.filter(action="clusters.cluster.resume", target_id=str(cluster.pk)).exists()


def test_removing_a_cluster_needs_its_name_as_confirmation(make_user, shop):
    cluster = shop["cluster"]
    path = f"{API}/clusters/{cluster.pk}/"
    admin = client_for(make_user("ad", role="admin").user)
    assert client_for(make_user("op", role="operator").user).delete(f"{path}?confirm={cluster.name}").status_code == 403

    response = admin.delete(path)
    assert response.status_code == 400 and "confirm" in error_fields(response)
    assert cluster.name in error_fields(response)["confirm"][0]
    response = admin.delete(f"{path}?confirm=something-else")
    assert response.status_code == 400 and "confirm" in error_fields(response)
    assert Workload.objects.filter(cluster=cluster).exists()

    response = admin.delete(
        f"{path}?confirm={cluster.name}", json.dumps({"reason": "decommissioned"}), content_type="application/json"
    )
    assert response.status_code == 204, response.content
    assert not Cluster.objects.filter(pk=cluster.pk).exists()
    assert not Workload.objects.filter(cluster_id=cluster.pk).exists(), "observed data goes with the cluster"
    event = AuditEvent.objects.get(action="clusters.cluster.delete", target_id=str(cluster.pk))
    assert event.message == "decommissioned" and event.metadata["removed"]["workloads"] >= 2
    assert admin.get(path).status_code == 404


# --- scoping: lists, details and counts ------------------------------------------------------------------------


def ids(response: Any) -> set[int]:
    return {row["id"] for row in results(response)}


def test_a_namespace_scoped_viewer_sees_only_that_namespace(make_user, admin_persona, shop):
    cluster, a, b = shop["cluster"], shop["a"], shop["b"]
    person = make_user("ns-viewer")
    bind(person.user, "viewer", cluster, namespace=a)
    viewer = client_for(person.user)
    admin = client_for(admin_persona.user)
    in_a = {"cluster": cluster.pk, "namespace": a}
    in_b = {"cluster": cluster.pk, "namespace": b}

    observed = (("workloads", Workload), ("pods", Pod), ("applications", Application), ("warning-events", WarningEvent))
    for kind, model in observed:
        mine = set(model.objects.filter(**in_a).values_list("pk", flat=True))
        theirs = set(model.objects.filter(**in_b).values_list("pk", flat=True))
        assert mine and theirs
        seen = ids(viewer.get(f"{API}/{kind}/", {"limit": 500}))
        assert seen == mine, kind  # only namespace a, and all of it
        assert theirs <= ids(admin.get(f"{API}/{kind}/", {"limit": 500}))
        for pk in theirs:
            assert viewer.get(f"{API}/{kind}/{pk}/").status_code == 404, "hidden objects are not found"
        for pk in mine:
            assert viewer.get(f"{API}/{kind}/{pk}/").status_code == 200
    assert [row["name"] for row in results(viewer.get(f"{API}/namespaces/"))] == [a]
    assert results(viewer.get(f"{API}/nodes/")) == [], "nodes are cluster-wide"
    assert results(viewer.get(f"{API}/clusters/")) == [], "the cluster row needs a cluster binding"
    assert viewer.get(f"{API}/clusters/{cluster.pk}/").status_code == 404

    # Counts: within the viewer's rights.
    namespace_row = results(viewer.get(f"{API}/namespaces/"))[0]
    assert namespace_row["workload_count"] == 1 and namespace_row["pod_count"] == 2
    cart = results(viewer.get(f"{API}/applications/", {"q": "cart"}))[0]
    assert (cart["workload_count"], cart["pod_count"], cart["ready_pod_count"]) == (1, 2, 2)
    assert viewer.get(f"{API}/pods/", {"namespace": b}).json()["results"] == []

    # A cluster binding sees the cluster and counts everything in it; the global admin too.
    wide = make_user("cluster-viewer")
    bind(wide.user, "viewer", cluster)
    counts = client_for(wide.user).get(f"{API}/clusters/{cluster.pk}/").json()["counts"]
    assert counts["workloads"] == Workload.objects.filter(cluster=cluster).count()
    assert counts["pods"] == Pod.objects.filter(cluster=cluster, deleting=False).count()
    assert counts["nodes"] >= 1 and counts["namespaces"] >= 4  # default, kube-system, kube-public, a, b, ...
    assert counts == admin.get(f"{API}/clusters/{cluster.pk}/").json()["counts"]


def test_an_application_scoped_viewer_sees_that_application_only(make_user, shop):
    cluster = shop["cluster"]
    person = make_user("app-viewer")
    bind(person.user, "viewer", cluster, application="bank")
    viewer = client_for(person.user)
    assert {row["name"] for row in results(viewer.get(f"{API}/applications/"))} == {"bank"}
    assert {row["name"] for row in results(viewer.get(f"{API}/workloads/"))} == {"bank-api"}
    assert {row["application_name"] for row in results(viewer.get(f"{API}/pods/"))} == {"bank"}
    assert results(viewer.get(f"{API}/namespaces/")) == [], "an application binding reaches no namespace row"


# --- filters, search, ordering, pages, query counts ---------------------------------------------------------


def test_filters_search_and_ordering(admin_persona, shop):
    cluster, a, b = shop["cluster"], shop["a"], shop["b"]
    admin = client_for(admin_persona.user)
    cart = Application.objects.get(cluster=cluster, namespace=a, name="cart")

    def names(endpoint: str, **params: Any) -> list[str]:
        return [row["name"] for row in results(admin.get(f"{API}/{endpoint}/", {"cluster": cluster.pk, **params}))]

    assert names("workloads", namespace=a) == ["cart-web"]
    assert names("workloads", application=cart.pk) == ["cart-web"]
    assert names("workloads", q="BANK", namespace=b) == ["bank-api"]
    assert a not in {row["namespace"] for row in results(admin.get(f"{API}/workloads/", {"q": "bank"}))}
    assert set(names("workloads", kind="Deployment")) >= {"cart-web", "bank-api"}
    assert "cart-web" not in names("workloads", kind="StatefulSet")
    assert set(names("workloads", ready="true")) >= {"cart-web", "bank-api"}
    assert "cart-web" not in names("workloads", ready="false")
    assert len(names("pods", namespace=a, phase="Running", ready="true")) == 2
    assert names("pods", namespace=a, phase="Pending") == []
    assert len(names("pods", application=cart.pk)) == 2
    assert names("applications", namespace=b) == ["bank"]
    assert names("applications", q="car", active="true", namespace=a) == ["cart"]
    assert names("namespaces", q=a) == [a]
    events = results(admin.get(f"{API}/warning-events/", {"cluster": cluster.pk, "namespace": b}))
    assert [(e["reason"], e["object_kind"], e["object_name"], e["application_name"]) for e in events] == [
        ("BankTrouble", "Deployment", "bank-api", "bank")
    ]
    trouble = {"cluster": cluster.pk, "kind": "Deployment", "reason": "CartTrouble"}
    found = results(admin.get(f"{API}/warning-events/", {**trouble, "limit": 500}))
    assert a in {e["namespace"] for e in found} and b not in {e["namespace"] for e in found}
    assert {e["reason"] for e in found} == {"CartTrouble"}
    assert results(admin.get(f"{API}/warning-events/", {"cluster": cluster.pk, "q": "trouble in cart-web"}))
    assert len(names("nodes", ready="true")) >= 1
    assert names("clusters", q=cluster.name[2:]) == [cluster.name]
    assert names("clusters", status="unreachable", q=cluster.name) == []
    assert names("workloads", ordering="-name", q="-")[:2] == sorted(names("workloads", q="-"), reverse=True)[:2]

    bad = [
        ("workloads", {"ready": "maybe"}, "ready"),
        ("workloads", {"kind": "CronJob"}, "kind"),
        ("workloads", {"status": "sleepy"}, "status"),
        ("workloads", {"cluster": "abc"}, "cluster"),
        ("workloads", {"application": "1.5"}, "application"),
        ("pods", {"phase": "Dancing"}, "phase"),
        ("pods", {"ordering": "secret_field"}, "ordering"),
        ("pods", {"ordering": "name,id"}, "ordering"),
        ("nodes", {"cordoned": "perhaps"}, "cordoned"),
        ("clusters", {"status": "on-fire"}, "status"),
        ("applications", {"limit": "0"}, "limit"),
        ("warning-events", {"cluster": "-1"}, "cluster"),
    ]
    for kind, params, field in bad:
        response = admin.get(f"{API}/{kind}/", params)
        assert response.status_code == 400, (kind, params, response.status_code)
        assert field in error_fields(response), (kind, params, response.json())


def test_cursor_pages_cover_every_pod_once(admin_persona, shop):
    admin = client_for(admin_persona.user)
    expected = set(Pod.objects.filter(cluster=shop["cluster"]).values_list("pk", flat=True))
    seen: list[int] = []
    page = admin.get(f"{API}/pods/", {"cluster": shop["cluster"].pk, "limit": 1}).json()
    while True:
        seen.extend(row["id"] for row in page["results"])
        if not page["next"]:
            break
        page = admin.get(page["next"]).json()
    assert len(seen) == len(set(seen)) and set(seen) == expected


def test_list_endpoints_cost_a_bounded_number_of_queries(make_user, admin_persona):
    """Counts are subqueries and relations joined: at most 4 queries (session, grants, page, watch streams)
    however many rows a page shows."""
    person = make_user("counter")
    clusters = []
    for i in range(12):
        cluster = cluster_row(f"q-{i:02d}", "https://q.example")
        app = Application.objects.create(cluster=cluster, namespace="ns", name=f"app-{i}")
        for j in range(3):
            workload = Workload.objects.create(
                cluster=cluster, namespace="ns", kind="Deployment", name=f"w-{j}", uid=uuid.uuid4().hex, application=app
            )
            Pod.objects.create(
                cluster=cluster,
                namespace="ns",
                name=f"w-{j}-p",
                uid=uuid.uuid4().hex,
                workload=workload,
                application=app,
            )
        clusters.append(cluster)
        bind(person.user, "viewer", cluster)
    for who in (client_for(admin_persona.user), client_for(person.user)):
        for kind in ("clusters", "namespaces", "nodes", "applications", "workloads", "pods", "warning-events"):
            who.get(f"{API}/{kind}/")  # warm-up (session, content types)
            with CaptureQueriesContext(connection) as queries:
                response = who.get(f"{API}/{kind}/", {"limit": 100})
            assert response.status_code == 200
            assert len(queries) <= 4, (kind, [q["sql"][:200] for q in queries])
        rows = results(who.get(f"{API}/clusters/", {"q": "q-"}))
        assert len(rows) == 12 and all(row["counts"]["workloads"] == 3 for row in rows)
        assert all(row["counts"]["pods"] == 3 and row["counts"]["applications"] == 1 for row in rows)


def test_application_versions_follow_rollouts(k8s_api, admin_persona, shop):
    cluster, a = shop["cluster"], shop["a"]
    admin = client_for(admin_persona.user)
    cart = Application.objects.get(cluster=cluster, namespace=a, name="cart")
    first = results(admin.get(f"{API}/applications/{cart.pk}/versions/"))
    assert len(first) == 1 and first[0]["images"][0]["image"] == "registry.example/shop:1.0"
    apps = k8s.AppsV1Api(k8s_api)
    new_image = {"containers": [{"name": "app", "image": "registry.example/shop:2.0"}]}
    apps.patch_namespaced_deployment("cart-web", a, {"spec": {"template": {"spec": new_image}}})
    wait_for(  # the controller-manager numbers the rollout: that makes it a version
        "revision 2 of cart-web",
        lambda: (
            (apps.read_namespaced_deployment("cart-web", a).metadata.annotations or {}).get(
                "deployment.kubernetes.io/revision"
            )
            == "2"
        ),
    )
    synced(cluster)
    versions = results(admin.get(f"{API}/applications/{cart.pk}/versions/"))
    assert len(versions) == 2
    assert versions[0]["changes"] == [
        {"container": "app", "from": "registry.example/shop:1.0", "to": "registry.example/shop:2.0"}
    ]
    assert admin.get(f"{API}/applications/{cart.pk}/versions/", {"limit": "x"}).status_code == 400
