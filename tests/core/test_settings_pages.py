"""Settings pages: rights, tokens (secret shown once), role bindings and people, each restricted."""

from __future__ import annotations

import pytest

from apps.users.models import ApiToken, RoleBinding
from tests.support.clients import logged_in as client_for

pytestmark = pytest.mark.django_db


def test_the_account_page_says_what_i_may_do(viewer_persona, outsider_persona):
    assert "viewer at global" in client_for(viewer_persona).get("/users/").content.decode()
    assert "no role bindings yet" in client_for(outsider_persona).get("/users/").content.decode()


def test_a_token_secret_is_shown_once_and_can_be_revoked(viewer_persona, outsider_persona):
    client = client_for(viewer_persona)
    html = client.post("/users/tokens/", {"name": "laptop", "days": 30}).content.decode()
    token = ApiToken.objects.get(user=viewer_persona.user)
    assert "it will not be shown again" in html
    assert f"icc_{token.prefix}_" in html
    again = client.get("/users/tokens/").content.decode()
    assert f"icc_{token.prefix}_" not in again
    assert "laptop" in again
    assert client_for(outsider_persona).post(f"/users/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/users/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    bad = client.post("/users/tokens/", {"name": "", "days": 999}).content.decode()
    assert "This field is required" in bad
    assert "less than or equal to 366" in bad


def test_admins_grant_roles_in_the_portal_and_viewers_cannot(make_user, outsider_persona, viewer_persona):
    admin = make_user("portal-admin", role="admin")
    client = client_for(admin)
    response = client.post(
        "/users/bindings/", {"role": "operator", "user": outsider_persona.username, "scope_kind": "global"}
    )
    assert response.status_code == 302
    binding = RoleBinding.objects.get(user=outsider_persona.user)
    assert binding.role == "operator"
    bad = client.post("/users/bindings/", {"role": "viewer", "user": "nobody", "scope_kind": "global"})
    assert "no user &#x27;nobody&#x27;" in bad.content.decode()

    viewer = client_for(viewer_persona)
    page = viewer.get("/users/bindings/").content.decode()
    assert "Grant a role" not in page
    assert viewer.post(f"/users/bindings/{binding.pk}/delete/").status_code == 302
    assert RoleBinding.objects.filter(pk=binding.pk).exists(), "a viewer cannot remove bindings"
    assert client.post(f"/users/bindings/{binding.pk}/delete/").status_code == 302
    assert not RoleBinding.objects.filter(pk=binding.pk).exists()


def test_people_lists_are_restricted(viewer_persona, outsider_persona):
    html = client_for(outsider_persona).get("/users/people/").content.decode()
    assert outsider_persona.username in html
    assert viewer_persona.username not in html
    assert viewer_persona.username in client_for(viewer_persona).get("/users/people/").content.decode()
