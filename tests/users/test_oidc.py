"""OpenID Connect login against a real provider (npm ``oidc-provider``, tests/support/oidc_provider/provider.js).

The provider runs on ``localhost`` and ICC on ``127.0.0.1`` (cookies ignore ports). Its accounts file is
read on every lookup, so a test changes someone's groups at the "identity provider" between two logins.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.browser import chromium_page, outside_playwright
from tests.support.components import ARTIFACTS, free_port
from tests.support.oidc import (
    ALICE,
    CLIENT_ID,
    CLIENT_SECRET,
    oidc_env,
    sso_login,
)
from tests.support.server import running_icc, start_up_check


def test_sso_login_creates_the_user_and_maps_groups_to_roles(icc_oidc, oidc_provider):
    from apps.audit.models import AuditEvent
    from apps.core.access import GLOBAL, grants
    from apps.users.models import RoleBinding, Team, User

    session = sso_login(icc_oidc, "alice")
    me = session.get(f"{icc_oidc.url}/api/v1/role-bindings/", timeout=10)
    assert me.status_code == 200, me.text

    user = User.objects.get(username="alice")  # preferred_username, not a hash of the email
    assert (user.email, user.first_name, user.last_name, user.display_name) == (
        "alice@example.test",
        "Alice",
        "Liddell",
        "Alice Liddell",
    )
    assert not user.has_usable_password()
    assert set(user.teams.values_list("name", "source")) == {("icc-admins", "oidc"), ("icc-ops", "oidc")}
    assert not Team.objects.filter(name="unmapped-group").exists()  # only mapped groups become teams
    admins = RoleBinding.objects.get(team__name="icc-admins")
    assert (admins.role, admins.scope_kind, admins.source) == ("admin", "global", "oidc")
    assert RoleBinding.objects.get(team__name="icc-ops").role == "operator"
    assert ("admin", GLOBAL) in grants(user)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"users.user.create", "users.team.create", "users.team.membership", "users.rolebinding.create"} <= actions
    assert "users.session.login" in actions

    # An admin may create users over the API (session auth needs the CSRF token).
    created = session.post(
        f"{icc_oidc.url}/api/v1/users/",
        json={"username": "bob-by-alice", "email": "bob@example.test"},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": icc_oidc.url},
        timeout=10,
    )
    assert created.status_code == 201, created.text

    # Logout ends the provider's session too (RP-initiated logout with the ID token as hint).
    logout = session.post(
        f"{icc_oidc.url}/accounts/logout/",
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": icc_oidc.url},
        allow_redirects=False,
        timeout=10,
    )
    assert logout.status_code == 302
    location = urlsplit(logout.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == oidc_provider.issuer
    query = parse_qs(location.query)
    assert query["id_token_hint"] and query["post_logout_redirect_uri"] == [f"{icc_oidc.url}/accounts/login/"]
    assert session.get(f"{icc_oidc.url}/api/v1/role-bindings/", timeout=10).status_code in {401, 403}


def test_leaving_a_group_at_the_provider_removes_rights_at_next_login(icc_oidc, oidc_provider):
    from apps.audit.models import AuditEvent
    from apps.core.access import GLOBAL, grants
    from apps.users.models import User

    sso_login(icc_oidc, "alice")
    assert ("admin", GLOBAL) in grants(User.objects.get(username="alice"))

    oidc_provider.set_account("alice", {**ALICE, "groups": ["icc-ops"]})
    session = sso_login(icc_oidc, "alice")

    user = User.objects.get(username="alice")
    assert list(user.teams.values_list("name", flat=True)) == ["icc-ops"]
    assert grants(user) == [("operator", GLOBAL)]
    removed = (
        AuditEvent.objects.filter(action="users.team.membership", target_display="icc-admins").order_by("pk").last()
    )
    assert removed is not None and removed.changes["member"] == {"before": "alice", "after": None}
    refused = session.post(
        f"{icc_oidc.url}/api/v1/users/",
        json={"username": "carol-by-alice"},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": icc_oidc.url},
        timeout=10,
    )
    assert refused.status_code == 403, refused.text


def test_explicit_endpoints_work_without_discovery(transactional_db, tmp_path, collected_static, oidc_provider):
    from apps.core.access import grants
    from apps.users.models import User

    document = requests.get(f"{oidc_provider.issuer}/.well-known/openid-configuration", timeout=10).json()
    env = {
        "OIDC_OP_AUTHORIZATION_ENDPOINT": document["authorization_endpoint"],
        "OIDC_OP_TOKEN_ENDPOINT": document["token_endpoint"],
        "OIDC_OP_USER_ENDPOINT": document["userinfo_endpoint"],
        "OIDC_OP_JWKS_ENDPOINT": document["jwks_uri"],
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_GROUP_ROLES": "icc-ops=viewer",
    }
    oidc_provider.set_account("alice", {**ALICE, "preferred_username": "", "groups": ["icc-ops"]})
    with running_icc(tmp_path, collected_static, oidc_provider.icc_port, **env) as server:
        session = sso_login(server, "alice")
        # No end_session endpoint configured (and no discovery): logout stays local.
        logout = session.post(
            f"{server.url}/accounts/logout/",
            headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": server.url},
            allow_redirects=False,
            timeout=10,
        )
        assert logout.headers["Location"] == "/accounts/login/"
    user = User.objects.get(username="alice@example.test")  # no preferred_username: the email
    assert [role for role, _ in grants(user)] == ["viewer"]


@pytest.mark.browser
def test_sso_login_in_chromium(icc_oidc, oidc_provider):
    from playwright.sync_api import expect

    with chromium_page() as page:
        page.goto(f"{icc_oidc.url}/")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "oidc-login-page.png"))
        page.get_by_text("Log in with single sign-on").click()
        page.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
        page.fill("input[name=login]", "alice")
        page.fill("input[name=password]", "anything")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(rf"^{re.escape(icc_oidc.url)}/"))
        expect(page.locator("body")).to_contain_text("alice")
        page.screenshot(path=str(ARTIFACTS / "oidc-login.png"), full_page=True)

        # Logging out of ICC ends the provider's session too: it asks, then returns to ICC's login page.
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(re.compile(r"^http://localhost:\d+/session/end"))
        page.get_by_role("button", name=re.compile("sign me out", re.I)).click()
        page.wait_for_url(f"{icc_oidc.url}/accounts/login/")
        expect(page.get_by_text("Log in with single sign-on")).to_be_visible()

    def admin_binding() -> bool:
        from apps.users.models import User

        return User.objects.get(username="alice").teams.filter(name="icc-admins", role_bindings__role="admin").exists()

    assert outside_playwright(admin_binding)


def test_oidc_only_refuses_local_passwords_except_for_superusers(transactional_db, tmp_path, collected_static):
    from apps.users.oidc import REFUSED_MESSAGE
    from apps.users.services import user_create

    password = "pw-local-Correct-Horse-42"
    user_create(username="lou-local", password=password)
    user_create(username="sue-super", password=password, is_superuser=True)
    env = oidc_env("http://localhost:9")  # discovery happens at first use: no provider needed to start
    with running_icc(tmp_path, collected_static, free_port(), OIDC_ONLY="true", **env) as server:
        session = requests.Session()
        page = session.get(f"{server.url}/accounts/login/", timeout=10)
        assert "Log in with single sign-on" in page.text
        assert 'name="password"' not in page.text
        page = session.get(f"{server.url}/accounts/login/?local=1", timeout=10)
        assert 'name="password"' in page.text

        def log_in(username: str) -> requests.Response:
            return session.post(
                f"{server.url}/accounts/login/",
                data={
                    "username": username,
                    "password": password,
                    "csrfmiddlewaretoken": session.cookies["csrftoken"],
                },
                headers={"Referer": f"{server.url}/accounts/login/"},
                allow_redirects=False,
                timeout=10,
            )

        refused = log_in("lou-local")
        assert refused.status_code == 200
        assert unescape(refused.text).count(REFUSED_MESSAGE) == 1
        assert log_in("sue-super").status_code == 302  # break-glass: superusers keep their password

        # The provider is down: the SSO button says so instead of failing with an error page.
        down = requests.get(f"{server.url}/oidc/authenticate/", timeout=30)
        assert down.url.endswith("/accounts/login/?sso=unavailable")
        assert "The single sign-on provider cannot be reached right now." in down.text


check = start_up_check  # manage.py check in a clean environment plus ``env``


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_ISSUER": "https://idp.example"}, "OIDC_RP_CLIENT_ID is not set"),
        ({"OIDC_ISSUER": "https://idp.example", "OIDC_RP_CLIENT_ID": "icc"}, "OIDC_RP_CLIENT_SECRET is not set"),
        (
            {
                "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://idp.example/auth",
                "OIDC_RP_CLIENT_ID": "icc",
                "OIDC_RP_CLIENT_SECRET": "s",
            },
            "OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT, OIDC_OP_JWKS_ENDPOINT are not set",
        ),
        ({"OIDC_RP_CLIENT_ID": "icc"}, "OIDC_RP_CLIENT_ID is set but OpenID Connect has no provider"),
        ({"OIDC_ONLY": "true"}, "OIDC_ONLY is on but OpenID Connect is not configured"),
    ],
)
def test_a_partial_oidc_configuration_fails_the_system_check(env, message, tmp_path):
    result = check(env, tmp_path)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OIDC_GROUP_ROLES", "icc-admins=emperor", "OIDC_GROUP_ROLES: role 'emperor' of group 'icc-admins' is not"),
        ("OIDC_GROUP_ROLES", "icc-admins", "OIDC_GROUP_ROLES: 'icc-admins' is not group=role"),
        ("OIDC_GROUP_ROLES", "a=admin,a=viewer", "OIDC_GROUP_ROLES: group 'a' is mapped twice"),
        ("OIDC_ISSUER", "idp.example", "OIDC_ISSUER: scheme '(none)' is not one of http, https"),
        ("OIDC_OP_TOKEN_ENDPOINT", "ftp://idp.example/t", "OIDC_OP_TOKEN_ENDPOINT: scheme 'ftp'"),
        ("OIDC_RP_SIGN_ALGO", "none", "OIDC_RP_SIGN_ALGO: 'none' is not one of"),
        ("OIDC_ONLY", "perhaps", "OIDC_ONLY: 'perhaps' is not a boolean"),
    ],
)
def test_a_malformed_oidc_setting_stops_start_up_naming_it(variable, value, message, tmp_path):
    result = check({variable: value}, tmp_path)
    assert result.returncode == 78, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_client_secret_may_come_from_a_file(tmp_path):
    secret = tmp_path / "oidc-secret"
    secret.write_text("from-a-file\n")
    env = {"OIDC_ISSUER": "https://idp.example", "OIDC_RP_CLIENT_ID": "icc", "OIDC_RP_CLIENT_SECRET_FILE": str(secret)}
    result = check(env, tmp_path)
    assert result.returncode == 0, result.stderr
