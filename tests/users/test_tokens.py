"""API tokens: shown once, stored hashed, narrowed below the owner's rights, revocable, audited."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import EventInput, audit_record_many
from apps.users.models import ApiToken, RoleBinding
from tests.support.clients import bearer, logged_in

pytestmark = pytest.mark.django_db
TOKENS = "/api/v1/tokens/"


def create(client: Client, **data) -> dict:
    response = client.post(TOKENS, {"name": "ci", **data}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_token_is_shown_once_and_stored_only_as_a_hash(viewer_persona, caplog):
    caplog.set_level(logging.DEBUG)
    client = logged_in(viewer_persona)
    body = create(client)
    secret = body["token"]
    assert secret.startswith(f"icc_{body['prefix']}_")
    assert "token" not in client.get(f"{TOKENS}{body['id']}/").json()
    assert all("token" not in row for row in client.get(TOKENS).json()["results"])
    row = ApiToken.objects.get(pk=body["id"])
    assert secret not in (row.token_hash, row.prefix)
    assert len(row.token_hash) == 64
    bearer(secret).get("/api/v1/users/")
    everything = str(list(ApiToken.objects.values())) + str(list(AuditEvent.objects.values()))
    assert secret not in everything
    assert secret.split("_", 2)[2] not in everything
    assert secret not in caplog.text


def test_bearer_tokens_authenticate_and_bad_ones_are_401(viewer_persona):
    secret = create(logged_in(viewer_persona))["token"]
    assert bearer(secret).get("/api/v1/users/").status_code == 200
    assert bearer(secret[:-2] + "xx").get("/api/v1/users/").status_code == 401
    assert bearer("icc_nothing_here").get("/api/v1/users/").status_code == 401
    response = Client(HTTP_AUTHORIZATION="Bearer").get("/api/v1/users/")
    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["error"]["message"]


def test_revoked_and_expired_tokens_stop_working(viewer_persona):
    client = logged_in(viewer_persona)
    body = create(client)
    assert client.delete(f"{TOKENS}{body['id']}/").status_code == 204
    assert ApiToken.objects.get(pk=body["id"]).revoked_at is not None
    assert bearer(body["token"]).get("/api/v1/users/").status_code == 401
    assert AuditEvent.objects.filter(action="users.token.revoke").count() == 1
    assert AuditEvent.objects.filter(action="users.token.use", outcome="denied", message="revoked").count() == 1

    expiring = create(client, expires_at=(timezone.now() + timedelta(seconds=2)).isoformat())
    ApiToken.objects.filter(pk=expiring["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bearer(expiring["token"]).get("/api/v1/users/").status_code == 401


def test_bad_token_requests_name_the_field(viewer_persona):
    client = logged_in(viewer_persona)
    past = (timezone.now() - timedelta(days=1)).isoformat()
    cases = [
        ({"expires_at": past}, "expires_at"),
        ({"restrictions": [{"role": "emperor"}]}, "restrictions[0]"),
        ({"restrictions": [{"role": "viewer", "scope_kind": "cluster"}]}, "restrictions[0]"),
        ({"restrictions": "all"}, "restrictions"),
        ({"colour": "blue"}, "colour"),
    ]
    for data, field in cases:
        response = client.post(TOKENS, {"name": "x", **data}, content_type="application/json")
        assert response.status_code == 400, (data, response.content)
        assert field in response.json()["error"]["fields"], (data, response.json())
    assert ApiToken.objects.count() == 0, "nothing half-created remains"


def scoped_events() -> None:
    audit_record_many(
        [
            EventInput(action="tests.c1", scope={"cluster": "c1"}),
            EventInput(action="tests.c2", scope={"cluster": "c2"}),
        ]
    )


def seen(client: Client) -> set[str]:
    rows = client.get("/api/v1/audit/events/", {"action": "tests."}).json()["results"]
    return {row["action"] for row in rows}


def test_a_token_can_be_narrowed_but_never_beyond_its_owner(viewer_persona):
    scoped_events()
    client = logged_in(viewer_persona)
    assert seen(client) == {"tests.c1", "tests.c2"}
    narrow = create(client, restrictions=[{"role": "viewer", "scope_kind": "cluster", "cluster": "c1"}])
    assert seen(bearer(narrow["token"])) == {"tests.c1"}

    response = client.post(
        TOKENS, {"name": "more", "restrictions": [{"role": "admin"}]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "restrictions" in response.json()["error"]["fields"]

    RoleBinding.objects.filter(user=viewer_persona.user).delete()  # the owner's rights shrink
    assert seen(bearer(narrow["token"])) == set(), "the token shrinks with its owner"


def test_a_limited_superuser_token_is_no_superuser(admin_persona):
    scoped_events()
    client = logged_in(admin_persona)
    token = create(client, restrictions=[{"role": "viewer", "scope_kind": "cluster", "cluster": "c2"}])["token"]
    assert seen(bearer(token)) == {"tests.c2"}
    response = bearer(token).post("/api/v1/users/", {"username": "x"}, content_type="application/json")
    assert response.status_code == 403


def test_use_from_a_new_address_is_audited(viewer_persona):
    body = create(logged_in(viewer_persona))
    bearer(body["token"], "10.1.1.1").get("/api/v1/users/")
    bearer(body["token"], "10.1.1.1").get("/api/v1/users/")
    bearer(body["token"], "10.2.2.2").get("/api/v1/users/")
    events = list(AuditEvent.objects.filter(action="users.token.use_new_ip").order_by("seq"))
    assert [e.metadata["ip"] for e in events] == ["10.1.1.1", "10.2.2.2"]
    assert events[1].metadata["previous_ip"] == "10.1.1.1"
    assert events[0].actor_kind == "token"
    token = ApiToken.objects.get(pk=body["id"])
    assert token.last_used_ip == "10.2.2.2"
    assert token.last_used_at is not None
    created = AuditEvent.objects.get(action="users.token.create")
    assert created.actor_name == viewer_persona.username


def test_people_see_their_own_tokens_and_global_admins_all(viewer_persona, outsider_persona, make_user):
    mine = create(logged_in(viewer_persona))
    theirs = create(logged_in(outsider_persona))
    outsider = logged_in(outsider_persona)
    assert [t["id"] for t in outsider.get(TOKENS).json()["results"]] == [theirs["id"]]
    assert outsider.get(f"{TOKENS}{mine['id']}/").status_code == 404
    assert outsider.delete(f"{TOKENS}{mine['id']}/").status_code == 404
    boss = make_user("tok-admin", role="admin")
    ids = {t["id"] for t in logged_in(boss).get(TOKENS).json()["results"]}
    assert ids == {mine["id"], theirs["id"]}
