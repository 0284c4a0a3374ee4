"""Teams: created by global admins, members set for local teams, bindings to a team reach its members."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.core.access import grants
from apps.users.models import RoleBinding, Team, User
from tests.support.clients import logged_in as client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/teams/"


def test_teams_are_made_and_filled_by_global_admins(make_user, outsider_persona, viewer_persona):
    admin = client_for(make_user("team-admin", role="admin"))
    response = admin.post(URL, {"name": "payments"}, content_type="application/json")
    assert response.status_code == 201, response.content
    team_id = response.json()["id"]
    response = admin.put(
        f"{URL}{team_id}/members/", {"members": [outsider_persona.username]}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["members"] == [outsider_persona.username]
    assert AuditEvent.objects.filter(action="users.team.members").exists()

    RoleBinding.objects.create(team=Team.objects.get(pk=team_id), role="operator")
    fresh = User.objects.get(pk=outsider_persona.user.pk)
    assert [role for role, _ in grants(fresh)] == ["operator"], "a team's binding reaches its members"

    viewer = client_for(viewer_persona)
    assert viewer.post(URL, {"name": "x"}, content_type="application/json").status_code == 403
    assert viewer.put(f"{URL}{team_id}/members/", {"members": []}, content_type="application/json").status_code == 403
    outsider_view = client_for(outsider_persona).get(URL).json()["results"]
    assert [t["name"] for t in outsider_view] == ["payments"], "members see their team"


def test_bad_team_input_names_the_field(make_user):
    admin = client_for(make_user("team-admin2", role="admin"))
    assert "name" in admin.post(URL, {"name": "not a slug"}, content_type="application/json").json()["error"]["fields"]
    admin.post(URL, {"name": "dup"}, content_type="application/json")
    response = admin.post(URL, {"name": "dup"}, content_type="application/json")
    assert response.status_code == 409
    team = Team.objects.get(name="dup")
    response = admin.put(f"{URL}{team.pk}/members/", {"members": ["ghost"]}, content_type="application/json")
    assert response.status_code == 400
    assert "members" in response.json()["error"]["fields"]
    sso = Team.objects.create(name="sso-team", source="oidc")
    response = admin.put(f"{URL}{sso.pk}/members/", {"members": []}, content_type="application/json")
    assert response.status_code == 400
    assert "provider" in response.json()["error"]["message"]
