"""API v1: authentication, pagination, query counts, and bad input that names the field."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.users.models import User

pytestmark = pytest.mark.django_db
USERS = "/api/v1/users/"


@pytest.fixture
def staff_client(client, admin_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    return client


def post(client, data, content_type="application/json"):
    body = data if isinstance(data, (str, bytes)) else json.dumps(data)
    return client.post(USERS, body, content_type=content_type)


def test_anonymous_requests_are_refused_not_crashed(client):
    assert client.get(USERS).status_code == 401
    response = post(client, {"username": "x"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_paginated_list_of_100_users_costs_at_most_3_queries(staff_client):
    User.objects.bulk_create([User(username=f"user-{i:03d}") for i in range(120)])
    staff_client.get(USERS)  # warm-up: content types, etc.
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(USERS, {"limit": 100})
    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == 100
    assert body["next"] is not None and "cursor=" in body["next"]
    assert len(queries) <= 3, [q["sql"] for q in queries]

    following = staff_client.get(body["next"]).json()
    seen = {u["username"] for u in body["results"]} | {u["username"] for u in following["results"]}
    assert len(seen) == User.objects.count(), "cursor pages cover every user exactly once"


def test_the_fast_list_matches_the_serializer(staff_client, admin_persona):
    from apps.users.api.serializers import UserSerializer
    from apps.users.api.views import UserViewSet

    listed = staff_client.get(USERS).json()["results"]
    detail = staff_client.get(f"{USERS}{admin_persona.user.pk}/").json()
    assert listed[0] == detail
    assert set(UserViewSet.values_fields()) == set(UserSerializer(admin_persona.user).data.keys())


def test_filters_narrow_the_list(staff_client):
    User.objects.bulk_create([User(username="alpha-one"), User(username="beta-two")])
    names = [u["username"] for u in staff_client.get(USERS, {"username": "alpha"}).json()["results"]]
    assert names == ["alpha-one"]


@pytest.mark.parametrize("limit", ["0", "501", "many"])
def test_an_out_of_range_limit_names_the_parameter(staff_client, limit):
    response = staff_client.get(USERS, {"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["error"]["fields"]


def test_an_outsider_sees_only_themself_and_cannot_create(client, outsider_persona, admin_persona):
    client.login(username=outsider_persona.username, password=outsider_persona.password)
    names = [u["username"] for u in client.get(USERS).json()["results"]]
    assert names == [outsider_persona.username]
    assert client.get(f"{USERS}{admin_persona.user.pk}/").status_code == 404, "invisible objects are not found"
    assert post(client, {"username": "sneaky"}).status_code == 403
    assert not User.objects.filter(username="sneaky").exists()


def test_a_global_viewer_reads_everyone_but_changes_nothing(client, viewer_persona, admin_persona):
    client.login(username=viewer_persona.username, password=viewer_persona.password)
    names = {u["username"] for u in client.get(USERS).json()["results"]}
    assert names == {viewer_persona.username, admin_persona.username}
    url = f"{USERS}{admin_persona.user.pk}/"
    assert client.get(url).status_code == 200
    response = client.patch(url, {"display_name": "pwned"}, content_type="application/json")
    assert response.status_code == 403, "visible but not allowed is a 403"
    assert post(client, {"username": "sneaky"}).status_code == 403


def test_a_global_admin_binding_allows_managing_users(client, make_user):
    boss = make_user("bea-admin", role="admin")
    client.login(username=boss.username, password=boss.password)
    assert post(client, {"username": "hired"}).status_code == 201
    hired = User.objects.get(username="hired")
    response = client.patch(f"{USERS}{hired.pk}/", {"display_name": "Hired"}, content_type="application/json")
    assert response.status_code == 200


def test_create_then_read_back_without_the_password(staff_client):
    response = post(staff_client, {"username": "grace", "email": "grace@example.com", "password": "Grace-Hopper-1906"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "grace" and "password" not in body
    assert User.objects.get(username="grace").check_password("Grace-Hopper-1906")


def test_malformed_json_is_a_400_naming_the_body(staff_client):
    response = post(staff_client, '{"username": "x",')
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert "body" in error["fields"]


def test_a_wrong_content_type_is_refused_naming_the_header(staff_client):
    response = post(staff_client, "username=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "Content-Type" in response.json()["error"]["fields"]


def test_unknown_fields_are_refused_by_name(staff_client):
    response = post(staff_client, {"username": "zed", "colour": "blue", "is_superuser": True})
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields["colour"] == ["Unknown field."]
    assert fields["is_superuser"] == ["Unknown field."], "read-only fields cannot be written"
    assert not User.objects.filter(username="zed").exists()


def test_out_of_range_values_name_the_field(staff_client):
    response = post(staff_client, {"username": "u" * 200})
    assert response.status_code == 400
    assert "username" in response.json()["error"]["fields"]
    response = post(staff_client, {"username": "ok-name", "is_active": "perhaps"})
    assert response.status_code == 400
    assert "is_active" in response.json()["error"]["fields"]


def test_a_weak_password_and_a_duplicate_name_are_refused_without_losing_data(staff_client, admin_persona):
    response = post(staff_client, {"username": "weak", "password": "123"})
    assert response.status_code == 400
    assert "password" in response.json()["error"]["fields"]
    response = post(staff_client, {"username": admin_persona.username.upper()})
    assert response.status_code == 409
    assert "username" in response.json()["error"]["fields"]
    assert User.objects.get(username=admin_persona.username).check_password(admin_persona.password)


def test_errors_carry_the_request_id(staff_client):
    response = staff_client.post(USERS, "{", content_type="application/json", headers={"X-Request-ID": "trace-me"})
    assert response.json()["request_id"] == "trace-me"


def test_openapi_schema_and_offline_docs(staff_client):
    schema = staff_client.get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    assert "/api/v1/users/" in schema.json()["paths"]
    for page in ("/api/v1/docs/", "/api/v1/redoc/"):
        html = staff_client.get(page).content.decode()
        assert "/static/drf_spectacular_sidecar/" in html, f"{page} must load its assets from our own static files"
