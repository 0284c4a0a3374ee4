"""Machine identity against a real kube-apiserver: a workload calls ICC with its ServiceAccount token, ICC
verifies it with the cluster's TokenReview API and maps it to the application its pods belong to.

Tokens come from the TokenRequest API (``create_namespaced_service_account_token``), as a projected
ServiceAccount token volume would give a pod.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.clusters import gateway as gateways
from apps.clusters.crypto import decrypt, encrypt
from apps.clusters.identity import MachineIdentity, MachineUser
from apps.clusters.models import Application, Cluster, Pod, Workload
from apps.core.access import Action, restrict
from tests.support.clients import forced_login as client_for
from tests.support.clusters import make_deployment, ready_pods, register, sa_token, service_account, synced
from tests.support.components import wait_for
from tests.support.kube import KubeCluster

API = "/api/v1"
pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db]
IDENTITY = f"{API}/identity/"


def call(token: str | None, cluster: str | None, path: str = IDENTITY, c: Client | None = None) -> Any:
    headers: dict[str, str] = {}
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if cluster is not None:
        headers["HTTP_X_ICC_CLUSTER"] = cluster
    return (c or Client()).get(path, **headers)


def forge(token: str) -> str:
    """The same token with one character of its signature changed."""
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


@pytest.fixture
def shop(kube: KubeCluster, k8s_api: k8s.ApiClient, new_namespace: Callable[[], str]) -> dict[str, Any]:
    """Namespace with ServiceAccount ``shop-sa`` running Deployment ``shop-web`` (application ``shop``)."""
    namespace = new_namespace()
    service_account(k8s_api, namespace, "shop-sa")
    make_deployment(k8s_api, namespace, "shop-web", part_of="shop", service_account="shop-sa")
    pods = ready_pods(k8s_api, namespace, "shop-web", 1)
    cluster = synced(register(kube))
    return {"cluster": cluster, "namespace": namespace, "pod": pods[0]}


def test_a_real_service_account_token_identifies_its_application(k8s_api, shop):
    cluster, namespace = shop["cluster"], shop["namespace"]
    token = sa_token(k8s_api, namespace, "shop-sa")
    response = call(token, cluster.name)
    assert response.status_code == 200, response.content
    app = Application.objects.get(cluster=cluster, namespace=namespace, name="shop")
    assert response.json() == {
        "cluster": cluster.pk,
        "cluster_name": cluster.name,
        "namespace": namespace,
        "service_account": "shop-sa",
        "username": f"system:serviceaccount:{namespace}:shop-sa",
        "pod": "",
        "application": app.pk,
        "application_name": "shop",
    }

    # A token bound to a pod names it; the pod decides the application.
    bound = sa_token(k8s_api, namespace, "shop-sa", pod=shop["pod"])
    response = call(bound, cluster.name)
    assert response.status_code == 200, response.content
    assert response.json()["pod"] == shop["pod"].metadata.name and response.json()["application"] == app.pk


def test_a_machine_identity_carries_no_user_rights(k8s_api, shop):
    token = sa_token(k8s_api, shop["namespace"], "shop-sa")
    for path in (f"{API}/workloads/", f"{API}/applications/", f"{API}/clusters/", f"{API}/users/"):
        response = call(token, shop["cluster"].name, path)
        assert response.status_code == 401, (path, response.status_code)
    app = Application.objects.get(cluster=shop["cluster"], namespace=shop["namespace"], name="shop")
    machine = MachineUser(
        MachineIdentity(
            cluster=shop["cluster"], namespace=shop["namespace"], service_account="shop-sa", application=app
        )
    )
    assert not machine.is_authenticated
    for model in (Workload, Pod, Application, Cluster):
        assert not restrict(machine, Action.READ, model.objects.all()).exists()


def test_a_forged_token_is_refused_and_audited_without_the_token(k8s_api, shop, caplog):
    caplog.set_level(logging.DEBUG)
    token = sa_token(k8s_api, shop["namespace"], "shop-sa")
    forged = forge(token)
    response = call(forged, shop["cluster"].name)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Bearer"
    message = response.json()["error"]["message"]
    assert "TokenReview" in message and shop["cluster"].name in message
    event = AuditEvent.objects.get(action="clusters.identity.authenticate")
    assert event.outcome == "failed" and event.target_id == str(shop["cluster"].pk)
    assert call(forged, shop["cluster"].name).status_code == 401
    assert AuditEvent.objects.filter(action="clusters.identity.authenticate").count() == 1, (
        "a repeated refusal is answered from the cache, not audited again"
    )
    assert call(token, shop["cluster"].name).status_code == 200, "the genuine token still works"

    signature = token.split(".")[2]
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    cached = redis.Redis.from_url(settings.REDIS_URL)
    stored = b"".join(key + (cached.dump(key) or b"") for key in cached.keys("*"))
    for place, text in (("audit", audit), ("logs", caplog.text), ("cache", stored.decode(errors="replace"))):
        assert signature not in text and forge(token).split(".")[2] not in text, f"a token is in the {place}"


def test_identity_needs_a_service_account_token_and_a_known_cluster(k8s_api, make_user, shop):
    token = sa_token(k8s_api, shop["namespace"], "shop-sa")
    response = call(token, None)
    assert response.status_code == 401 and "X-ICC-Cluster" in response.json()["error"]["message"]
    response = call(token, "no-such-cluster")
    assert response.status_code == 401 and "no-such-cluster" in response.json()["error"]["message"]
    assert call(None, shop["cluster"].name).status_code == 401
    assert call("short-garbage", shop["cluster"].name).status_code == 401

    # ICC's own users and tokens are not machines.
    from apps.users.tokens import token_create

    person = make_user("human", role="admin")
    assert call(None, None, c=client_for(person.user)).status_code == 401
    _, secret = token_create(owner=person.user, name="t", by=person.user)
    assert call(secret, shop["cluster"].name).status_code == 401
    assert call(secret, None, f"{API}/workloads/").status_code == 200, "ICC tokens keep working elsewhere"


def test_a_service_account_of_no_or_several_applications_is_refused(k8s_api, shop):
    cluster, namespace = shop["cluster"], shop["namespace"]
    service_account(k8s_api, namespace, "lonely")
    response = call(sa_token(k8s_api, namespace, "lonely"), cluster.name)
    assert response.status_code == 403, response.content
    assert "lonely" in response.json()["error"]["message"]

    service_account(k8s_api, namespace, "shared")
    make_deployment(k8s_api, namespace, "cart", part_of="cart", service_account="shared")
    make_deployment(k8s_api, namespace, "bank", part_of="bank", service_account="shared")
    ready_pods(k8s_api, namespace, "cart", 1)
    ready_pods(k8s_api, namespace, "bank", 1)
    synced(cluster)
    response = call(sa_token(k8s_api, namespace, "shared"), cluster.name)
    assert response.status_code == 403, response.content
    message = response.json()["error"]["message"]
    assert "2 applications" in message and "bank" in message and "cart" in message
    denied = AuditEvent.objects.filter(action="clusters.identity.authenticate", outcome="denied")
    assert denied.count() == 2
    assert denied.filter(actor_name=f"system:serviceaccount:{namespace}:shared").exists()


def test_a_verified_identity_is_cached_briefly_by_token_hash(k8s_api, kube, shop):
    """Within the cache time (60 s) a known token needs no TokenReview; a new token does."""
    cluster, namespace = shop["cluster"], shop["namespace"]
    token = sa_token(k8s_api, namespace, "shop-sa")
    assert call(token, cluster.name).status_code == 200
    # Break ICC's credentials for the cluster: TokenReview is impossible from now on.
    stored = decrypt(bytes(cluster.credentials))
    Cluster.objects.filter(pk=cluster.pk).update(credentials=encrypt({**stored, "token": "broken-" + uuid.uuid4().hex}))
    gateways.forget(cluster.pk)
    assert call(token, cluster.name).status_code == 200, "answered from the cache"
    fresh = sa_token(k8s_api, namespace, "shop-sa", seconds=7200)
    assert fresh != token
    response = call(fresh, cluster.name)
    assert response.status_code == 503, response.content
    assert "cannot verify" in response.json()["error"]["message"]
    keys = redis.Redis.from_url(settings.REDIS_URL).keys("*machine-identity*")
    assert keys and all(token.encode() not in key for key in keys)


def test_the_token_of_a_deleted_service_account_is_refused(k8s_api, shop):
    namespace = shop["namespace"]
    service_account(k8s_api, namespace, "doomed")
    token = sa_token(k8s_api, namespace, "doomed")
    k8s.CoreV1Api(k8s_api).delete_namespaced_service_account("doomed", namespace)
    # The API server learns of the deletion asynchronously (its informer; the token controller deletes the
    # token's Secret): on a loaded machine a TokenReview right after the delete may still pass. Wait until the API
    # server itself refuses the token, then ask ICC (which has never verified it, so nothing is cached).
    reviews = k8s.AuthenticationV1Api(k8s_api)
    wait_for(
        "the API server to refuse the deleted account's token",
        lambda: (
            not reviews.create_token_review(
                k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token))
            ).status.authenticated
        ),
        timeout=60,
        interval=0.5,
    )
    response = call(token, shop["cluster"].name)
    assert response.status_code == 401, response.content
    assert "TokenReview" in response.json()["error"]["message"]
