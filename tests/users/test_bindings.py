"""Role bindings through the API: granted within one's scope, bad input named, nothing half-created."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.access import Scope
from apps.users import bindings
from apps.users.models import RoleBinding
from tests.support.clients import logged_in as client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/role-bindings/"


@pytest.fixture
def clusters_exist(monkeypatch):
    """Stands in for the clusters app (next issue), which will register the real resolver."""
    known = {"c1", "c2"}
    monkeypatch.setattr(
        bindings, "_scope_resolver", lambda s: None if s.cluster in known else f"no cluster {s.cluster!r}"
    )


def post(client, **data):
    return client.post(URL, data, content_type="application/json")


def test_a_global_admin_grants_and_removes_roles(make_user, outsider_persona):
    admin = make_user("grant-admin", role="admin")
    client = client_for(admin)
    response = post(client, role="viewer", user=outsider_persona.username)
    assert response.status_code == 201, response.content
    binding = RoleBinding.objects.get(user=outsider_persona.user)
    assert AuditEvent.objects.filter(action="users.rolebinding.create", target_id=str(binding.pk)).exists()
    assert client.delete(f"{URL}{binding.pk}/").status_code == 204
    assert not RoleBinding.objects.filter(pk=binding.pk).exists()
    assert AuditEvent.objects.filter(action="users.rolebinding.delete").exists()


def test_admins_manage_bindings_only_within_their_scope(make_user, outsider_persona, clusters_exist):
    cluster_admin = make_user("c1-admin")
    RoleBinding.objects.create(user=cluster_admin.user, role="admin", scope_kind="cluster", scope_cluster="c1")
    client = client_for(cluster_admin)
    ok = post(
        client,
        role="operator",
        user=outsider_persona.username,
        scope_kind="namespace",
        scope_cluster="c1",
        scope_namespace="shop",
    )
    assert ok.status_code == 201, ok.content
    elsewhere = post(client, role="operator", user=outsider_persona.username, scope_kind="cluster", scope_cluster="c2")
    assert elsewhere.status_code == 403
    assert post(client, role="viewer", user=outsider_persona.username).status_code == 403, "no global grants"
    assert RoleBinding.objects.filter(user=outsider_persona.user).count() == 1


@pytest.mark.parametrize(
    ("data", "field", "status"),
    [
        ({"role": "emperor"}, "role", 400),
        ({"role": "viewer", "scope_kind": "galaxy"}, "scope_kind", 400),
        ({"role": "viewer", "scope_kind": "cluster"}, "scope_cluster", 400),
        ({"role": "viewer", "scope_kind": "cluster", "scope_cluster": "c404"}, "scope_cluster", 400),
        ({"role": "viewer", "scope_kind": "namespace", "scope_cluster": "c1"}, "scope_namespace", 400),
        ({"role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at", 400),
        ({"role": "viewer", "user": "nobody-at-all"}, "user", 400),
        ({"role": "viewer", "colour": "red"}, "colour", 400),
    ],
)
def test_bad_bindings_name_the_field(make_user, outsider_persona, clusters_exist, data, field, status):
    admin = make_user("strict-admin", role="admin")
    payload = {"user": outsider_persona.username, **data}
    response = post(client_for(admin), **payload)
    assert response.status_code == status, response.content
    assert field in response.json()["error"]["fields"]
    assert not RoleBinding.objects.filter(user=outsider_persona.user).exists(), "nothing half-created"


def test_duplicates_are_refused(make_user, outsider_persona):
    admin = make_user("dup-admin", role="admin")
    client = client_for(admin)
    assert post(client, role="viewer", user=outsider_persona.username).status_code == 201
    response = post(client, role="viewer", user=outsider_persona.username)
    assert response.status_code == 409
    assert "role" in response.json()["error"]["fields"]
    assert RoleBinding.objects.filter(user=outsider_persona.user).count() == 1


def test_scoped_bindings_name_a_registered_cluster(make_user, outsider_persona):
    admin = make_user("early-admin", role="admin")
    for unknown in ("c1", "987654"):
        response = post(
            client_for(admin),
            role="viewer",
            user=outsider_persona.username,
            scope_kind="cluster",
            scope_cluster=unknown,
        )
        assert response.status_code == 400
        assert response.json()["error"]["fields"]["scope_cluster"] == [f"no registered cluster has id {unknown!r}"]


def test_everyone_sees_their_own_bindings(viewer_persona, outsider_persona):
    RoleBinding.objects.create(
        user=outsider_persona.user,
        role="viewer",
        scope_kind="cluster",
        scope_cluster="c9",
        expires_at=timezone.now() + timedelta(days=1),
    )
    own = client_for(outsider_persona).get(URL).json()["results"]
    assert [b["scope_cluster"] for b in own] == ["c9"]
    assert Scope("cluster", "c9").label() == "cluster c9"
