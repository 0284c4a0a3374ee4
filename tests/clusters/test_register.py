"""Registering clusters against a real kube-apiserver: good credentials, and each bad case with its message.

Credentials are checked to be encrypted at rest and absent from logs, audit events and the admin.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.db import connection
from django.test import override_settings

from apps.audit.models import AuditEvent
from apps.clusters import crypto, services, sync
from apps.clusters.credentials import Credentials
from apps.clusters.models import Cluster, ClusterStatus
from apps.core.errors import DomainError
from tests.support.clusters import READ_RULES, register, service_account_token
from tests.support.components import free_port
from tests.support.kube import KubeCluster

pytestmark = [pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]


def test_good_credentials_register_encrypt_and_sync(kube_apiserver, caplog):
    caplog.set_level(logging.DEBUG)
    cluster = register(kube_apiserver)
    assert cluster.status == ClusterStatus.PENDING
    assert cluster.server_version == "v1.20.2"
    assert cluster.missing_permissions == []  # the admin token may do everything

    # Encrypted at rest: the stored bytes hold neither the token nor the CA; the keys read them back.
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM clusters_cluster WHERE id = %s", [cluster.pk])
        stored = bytes(cursor.fetchone()[0])
    assert kube_apiserver.token.encode() not in stored
    assert b"BEGIN CERTIFICATE" not in stored
    assert Credentials.from_dict(crypto.decrypt(stored)).token == kube_apiserver.token

    result = sync.full_sync(cluster.pk)
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.CONNECTED, cluster.last_error
    assert result.objects > 0
    assert cluster.namespaces.filter(name="kube-system").exists()

    # The secret is nowhere in the audit trail or the logs.
    events = list(AuditEvent.objects.filter(target_id=str(cluster.pk)).values())
    assert any(e["action"] == "clusters.cluster.register" for e in events)
    assert kube_apiserver.token not in json.dumps(events, default=str)
    assert kube_apiserver.token not in caplog.text
    assert kube_apiserver.token not in repr(Credentials.from_dict(crypto.decrypt(stored)))


def test_a_duplicate_name_is_refused(kube_apiserver):
    cluster = register(kube_apiserver)
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, name=cluster.name)
    assert caught.value.field == "name"
    assert caught.value.status == 409


def test_a_wrong_token_is_a_401(kube_apiserver):
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, token="not-a-real-token-" + uuid.uuid4().hex)
    assert caught.value.field == "token"
    assert caught.value.code == "unauthorized"
    assert "401 Unauthorized" in caught.value.message
    assert not Cluster.objects.exists()


def test_missing_rbac_is_a_403_naming_the_verbs_and_resources(kube_apiserver):
    token = service_account_token(kube_apiserver)  # no role at all
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, token=token)
    message = caught.value.message
    assert caught.value.code == "kube_forbidden"
    assert "403 Forbidden" in message
    for expected in ("list, watch namespaces", "list, watch nodes", "list, watch apps/deployments"):
        assert expected in message
    assert token not in message


def test_read_only_rights_register_and_list_what_icc_cannot_do(kube_apiserver):
    token = service_account_token(kube_apiserver, rules=READ_RULES)
    cluster = register(kube_apiserver, token=token)
    assert "get, update apps/deployments/scale" in cluster.missing_permissions
    assert "get pods/log" in cluster.missing_permissions
    assert "delete pods" in cluster.missing_permissions
    assert "create authentication.k8s.io/tokenreviews" in cluster.missing_permissions
    assert sync.full_sync(cluster.pk).objects > 0


def test_an_unreachable_server_is_named(kube_apiserver):
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, api_url=f"https://127.0.0.1:{free_port()}")
    assert caught.value.field == "api_url"
    assert caught.value.code == "unreachable"
    assert "connection refused" in caught.value.message


def _other_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-cluster-ca")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_a_wrong_ca_fails_tls_verification(kube_apiserver):
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, ca_data=_other_ca())
    assert caught.value.field == "ca_data"
    assert caught.value.code == "tls_failed"
    assert "TLS verification" in caught.value.message
    assert "certificate" in caught.value.message


def flattened_kubeconfig(kube: KubeCluster, **user: object) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": kube.url,
                    "certificate-authority-data": base64.b64encode(kube.ca_path.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "admin", "user": user or {"token": kube.token}}],
        "contexts": [
            {"name": "other", "context": {"cluster": "test", "user": "admin"}},
            {"name": "test", "context": {"cluster": "test", "user": "admin"}},
        ],
        "current-context": "test",
    }


def test_a_flattened_kubeconfig_registers_with_the_chosen_context(kube_apiserver):
    text = json.dumps(flattened_kubeconfig(kube_apiserver))
    cluster = register(kube_apiserver, auth_mode="kubeconfig", kubeconfig=text, context="other", api_url="", token="")
    assert cluster.kubeconfig_context == "other"
    assert cluster.api_url == kube_apiserver.url


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda c: "clusters: [unclosed", "kubeconfig", "not valid YAML (line 1"),
        (lambda c: json.dumps({"apiVersion": "v1"}), "kubeconfig", "not a kubeconfig"),
        (lambda c: json.dumps(c | {"current-context": "nope"}), "context", "no context named 'nope'"),
        (
            lambda c: json.dumps(
                c | {"users": [{"name": "admin", "user": {"exec": {"command": "aws", "apiVersion": "x"}}}]}
            ),
            "kubeconfig",
            "exec credential plugin ('aws')",
        ),
        (
            lambda c: json.dumps(c | {"clusters": [{"name": "test", "cluster": {"server": "http://127.0.0.1:8080"}}]}),
            "kubeconfig",
            "is not HTTPS",
        ),
        (
            lambda c: json.dumps(
                c
                | {
                    "clusters": [
                        {"name": "test", "cluster": {"server": "https://x", "certificate-authority": "/etc/ca.crt"}}
                    ]
                }
            ),
            "kubeconfig",
            "flattened kubeconfig",
        ),
    ],
    ids=["not-yaml", "not-a-kubeconfig", "missing-context", "exec-plugin", "plain-http", "ca-file"],
)
def test_bad_kubeconfigs_are_refused_with_a_clear_message(kube_apiserver, mutate, field, message):
    text = mutate(flattened_kubeconfig(kube_apiserver))
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, auth_mode="kubeconfig", kubeconfig=text)
    assert caught.value.field == field
    assert message in caught.value.message
    assert not Cluster.objects.exists()


def test_plain_http_needs_explicit_consent(kube_apiserver):
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, api_url="http://127.0.0.1:1")
    assert caught.value.field == "api_url"
    assert caught.value.code == "insecure_server"
    with pytest.raises(DomainError) as caught:  # consent given: now it is only unreachable
        register(kube_apiserver, api_url=f"http://127.0.0.1:{free_port()}", allow_insecure=True)
    assert caught.value.code == "unreachable"


def test_new_credentials_are_tested_before_they_replace_the_old_ones(kube_apiserver):
    cluster = register(kube_apiserver)
    before = bytes(Cluster.objects.get(pk=cluster.pk).credentials)
    bad = {
        "auth_mode": "token",
        "api_url": kube_apiserver.url,
        "token": "wrong",
        "ca_data": kube_apiserver.ca_path.read_text(),
    }
    with pytest.raises(DomainError):
        services.cluster_update(cluster, connection=bad)
    assert bytes(Cluster.objects.get(pk=cluster.pk).credentials) == before  # nothing lost
    token = service_account_token(kube_apiserver, rules=READ_RULES)
    services.cluster_update(cluster, connection=bad | {"token": token})
    stored = Credentials.from_dict(crypto.decrypt(Cluster.objects.get(pk=cluster.pk).credentials))
    assert stored.token == token
    update = AuditEvent.objects.get(action="clusters.cluster.update", target_id=str(cluster.pk))
    assert "credentials" in update.changes  # that they changed, redacted by the audit trail itself
    assert token not in orjson.dumps(update.changes).decode()


def test_pause_resume_and_delete_with_confirmation(kube_apiserver):
    cluster = register(kube_apiserver)
    sync.full_sync(cluster.pk)
    services.cluster_set_paused(cluster, paused=True, reason="maintenance")
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.PAUSED
    assert sync.full_sync(cluster.pk).skipped == "the cluster is paused"
    services.cluster_set_paused(cluster, paused=False)
    with pytest.raises(DomainError) as caught:
        services.cluster_delete(cluster, confirm="wrong")
    assert caught.value.field == "confirm"
    assert cluster.namespaces.exists()
    pk = cluster.pk
    services.cluster_delete(cluster, confirm=cluster.name, reason="decommissioned")
    assert not Cluster.objects.filter(pk=pk).exists()
    from apps.clusters.models import Namespace

    assert not Namespace.objects.filter(cluster_id=pk).exists()  # observed data went with it
    deleted = AuditEvent.objects.get(action="clusters.cluster.delete", target_id=str(pk))
    assert deleted.message == "decommissioned"
    assert deleted.metadata["removed"]["workloads"] >= 0


def test_key_rotation_keeps_credentials_readable(kube_apiserver, settings):
    cluster = register(kube_apiserver)
    old_keys = list(settings.ICC_ENCRYPTION_KEYS)
    new_key = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode()
    with override_settings(ICC_ENCRYPTION_KEYS=[new_key, *old_keys]):
        assert services.rotate_credentials() >= 1
        stored = Cluster.objects.get(pk=cluster.pk).credentials
    with override_settings(ICC_ENCRYPTION_KEYS=[new_key]):  # the old key dropped: still readable
        assert Credentials.from_dict(crypto.decrypt(stored)).token == kube_apiserver.token
    with override_settings(ICC_ENCRYPTION_KEYS=old_keys), pytest.raises(DomainError) as caught:
        crypto.decrypt(stored)
    assert caught.value.code == "credentials_unreadable"


def test_the_admin_never_shows_credentials(kube_apiserver, admin_persona, client):
    cluster = register(kube_apiserver)
    client.force_login(admin_persona.user)
    page = client.get(f"/admin/clusters/cluster/{cluster.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert cluster.name in body
    assert kube_apiserver.token not in body
    assert "BEGIN CERTIFICATE" not in body
    assert client.get("/admin/clusters/cluster/add/").status_code == 403


def test_the_kubeconfig_of_the_fixture_is_not_a_flattened_one(kube_apiserver):
    """The fixture's kubeconfig points at a CA file: uploading it is refused with the flatten hint."""
    text = Path(kube_apiserver.kubeconfig_path).read_text()
    with pytest.raises(DomainError) as caught:
        register(kube_apiserver, auth_mode="kubeconfig", kubeconfig=text)
    assert "kubectl config view --raw --flatten" in caught.value.message
