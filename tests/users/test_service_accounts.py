"""Service accounts: created by global admins for a team, acting only through their tokens."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.users.models import RoleBinding, Team, User
from tests.support.clients import logged_in as client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/service-accounts/"


def post(client, url=URL, **data):
    return client.post(url, data, content_type="application/json")


def test_a_global_admin_creates_a_service_account_whose_token_acts_as_it(make_user, viewer_persona):
    Team.objects.create(name="platform")
    admin = client_for(make_user("sa-admin", role="admin"))
    response = post(admin, username="deploy-bot", team="platform")
    assert response.status_code == 201, response.content
    bot = User.objects.get(username="deploy-bot")
    assert bot.is_service_account
    assert not bot.has_usable_password()
    assert response.json()["team"] == "platform"
    assert AuditEvent.objects.filter(action="users.serviceaccount.create", target_id=str(bot.pk)).exists()

    RoleBinding.objects.create(user=bot, role="viewer")
    token = post(admin, "/api/v1/tokens/", name="ci", service_account="deploy-bot").json()["token"]
    as_bot = Client(HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="10.0.0.5")
    assert as_bot.get("/api/v1/users/").status_code == 200
    assert post(as_bot, "/api/v1/users/", username="nope").status_code == 403, "a viewer bot cannot configure"
    event = AuditEvent.objects.get(action="users.token.use_new_ip")
    assert event.actor_kind == "service_account"

    assert not Client().login(username="deploy-bot", password=""), "service accounts cannot log in"
    assert (
        post(client_for(viewer_persona), "/api/v1/tokens/", name="x", service_account="deploy-bot").status_code == 403
    )


@pytest.mark.parametrize(
    ("data", "status", "field"),
    [
        ({"username": "bot", "team": "missing"}, 400, "team"),
        ({"username": "has space", "team": "platform"}, 400, "username"),
        ({"username": "taken", "team": "platform"}, 409, "username"),
        ({"username": "bot", "team": "platform", "extra": 1}, 400, "extra"),
    ],
)
def test_bad_service_accounts_name_the_field(make_user, data, status, field):
    Team.objects.create(name="platform")
    make_user("taken")
    response = post(client_for(make_user("sa-admin2", role="admin")), **data)
    assert response.status_code == status, response.content
    assert field in response.json()["error"]["fields"]
    assert not User.objects.filter(is_service_account=True).exists()


def test_only_global_admins_create_service_accounts(viewer_persona):
    Team.objects.create(name="platform")
    assert post(client_for(viewer_persona), username="bot", team="platform").status_code == 403
