"""Privilege escalation (security issue, items 1-4), each written as the attack and the answer ICC gives.

1. scopes are compared whole; 2. tokens never exceed the token that made them; 3. only superusers touch
superusers; 4. OpenID Connect links identities (issuer, subject), not names.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster
from apps.core.access import GLOBAL, Action, Scope, can_at, grants
from apps.users.models import ApiToken, OidcIdentity, RoleBinding, User
from tests.support.clients import bearer, bind, logged_in
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db
BINDINGS = "/api/v1/role-bindings/"
TOKENS = "/api/v1/tokens/"
USERS = "/api/v1/users/"


def error_fields(response: Any) -> dict[str, Any]:
    return response.json()["error"].get("fields") or {}


def grant(persona: Any, role: str, to: Any, scope_kind: str, cluster: Cluster, **coordinates: str) -> Any:
    """``persona`` asks the API to bind ``to`` as ``role`` at a scope in ``cluster``."""
    return logged_in(persona).post(
        BINDINGS,
        {"role": role, "user": to.username, "scope_kind": scope_kind, "scope_cluster": str(cluster.pk), **coordinates},
        content_type="application/json",
    )


@pytest.fixture
def cluster() -> Cluster:
    """A registered cluster (the real scope resolver checks bindings name one)."""
    return cluster_row("prod")


# --- 1. scopes are compared whole -------------------------------------------------------------------------


@pytest.fixture
def namespace_admin(make_user, cluster):  # type: ignore[no-untyped-def]
    persona = make_user("ns-admin")
    bind(persona.user, "admin", cluster, namespace="team-a")
    return persona


@pytest.fixture
def application_admin(make_user, cluster):  # type: ignore[no-untyped-def]
    persona = make_user("app-admin")
    bind(persona.user, "admin", cluster, application="shop")
    return persona


@pytest.mark.parametrize(
    ("attacker", "coordinates", "field"),
    [
        ("namespace_admin", {"scope_namespace": "team-a"}, "scope_namespace"),
        ("application_admin", {"scope_application": "shop"}, "scope_application"),
        ("namespace_admin", {"scope_namespace": "team-a", "scope_application": "x"}, "scope_namespace"),
    ],
)
def test_a_scoped_admin_cannot_grant_a_cluster_binding_dressed_in_its_own_coordinates(
    request, cluster, outsider_persona, attacker, coordinates, field
):
    persona = request.getfixturevalue(attacker)
    response = grant(persona, "admin", outsider_persona, "cluster", cluster, **coordinates)
    assert response.status_code == 400, response.content
    assert field in error_fields(response)
    assert not RoleBinding.objects.filter(user=outsider_persona.user).exists()
    # The service's rule, not only the API's parsing: even a well-formed cluster scope is out of reach.
    assert not can_at(persona.user, Action.CONFIGURE, Scope("cluster", str(cluster.pk)))


def test_a_namespace_scope_naming_an_application_is_refused(namespace_admin, cluster, outsider_persona):
    response = grant(
        namespace_admin,
        "viewer",
        outsider_persona,
        "namespace",
        cluster,
        scope_namespace="team-a",
        scope_application="shop",
    )
    assert response.status_code == 400
    assert "scope_application" in error_fields(response)


def test_a_namespace_admin_still_grants_inside_its_namespace(namespace_admin, cluster, outsider_persona):
    response = grant(namespace_admin, "operator", outsider_persona, "namespace", cluster, scope_namespace="team-a")
    assert response.status_code == 201, response.content
    elsewhere = grant(namespace_admin, "operator", outsider_persona, "namespace", cluster, scope_namespace="team-b")
    assert elsewhere.status_code == 403


def test_the_settings_form_refuses_the_same_escalation(namespace_admin, cluster, outsider_persona):
    response = logged_in(namespace_admin).post(
        "/users/bindings/",
        {
            "role": "admin",
            "user": outsider_persona.username,
            "scope_kind": "cluster",
            "scope_cluster": str(cluster.pk),
            "scope_namespace": "team-a",
        },
    )
    assert response.status_code == 200  # the form again, with the error on the field
    assert response.context["form"].errors.get("scope_namespace")
    assert not RoleBinding.objects.filter(user=outsider_persona.user).exists()


def test_token_restrictions_naming_unused_coordinates_are_refused(namespace_admin, cluster):
    response = logged_in(namespace_admin).post(
        TOKENS,
        {
            "name": "wide",
            "restrictions": [
                {"role": "admin", "scope_kind": "cluster", "cluster": str(cluster.pk), "namespace": "team-a"}
            ],
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "restrictions[0]" in error_fields(response)


# --- 2. tokens never exceed the token that made them --------------------------------------------------------


def test_a_leaked_viewer_token_cannot_mint_its_owners_full_rights(make_user):
    owner = make_user("token-owner", role="admin")
    leaked = (
        logged_in(owner)
        .post(
            TOKENS,
            {"name": "read-only", "restrictions": [{"role": "viewer", "scope_kind": "global"}]},
            content_type="application/json",
        )
        .json()["token"]
    )

    unrestricted = bearer(leaked).post(TOKENS, {"name": "escalated"}, content_type="application/json")
    assert unrestricted.status_code == 201, unrestricted.content  # allowed, but it inherits the caller's limits
    minted = ApiToken.objects.get(name="escalated")
    assert minted.restrictions == [
        {"role": "viewer", "scope_kind": "global", "cluster": "", "namespace": "", "application": ""}
    ]
    # ...so the minted token cannot configure anything either.
    refused = bearer(unrestricted.json()["token"]).post(
        USERS, {"username": "backdoor"}, content_type="application/json"
    )
    assert refused.status_code == 403

    wider = bearer(leaked).post(
        TOKENS,
        {"name": "wider", "restrictions": [{"role": "admin", "scope_kind": "global"}]},
        content_type="application/json",
    )
    assert wider.status_code == 400
    assert "restrictions" in error_fields(wider)
    assert not ApiToken.objects.filter(name="wider").exists()


def test_a_limited_superuser_token_cannot_mint_an_unlimited_one(admin_persona, cluster):
    limited = (
        logged_in(admin_persona)
        .post(
            TOKENS,
            {
                "name": "c-viewer",
                "restrictions": [{"role": "viewer", "scope_kind": "cluster", "cluster": str(cluster.pk)}],
            },
            content_type="application/json",
        )
        .json()["token"]
    )
    response = bearer(limited).post(
        TOKENS,
        {"name": "root", "restrictions": [{"role": "admin", "scope_kind": "global"}]},
        content_type="application/json",
    )
    assert response.status_code == 400
    inherited = bearer(limited).post(TOKENS, {"name": "same"}, content_type="application/json")
    assert inherited.status_code == 201
    user = User.objects.get(pk=admin_persona.user.pk)
    user._icc_token_limits = [("viewer", Scope("cluster", str(cluster.pk)))]  # type: ignore[attr-defined]
    token = ApiToken.objects.get(name="same")
    assert token.restrictions[0]["scope_kind"] == "cluster"
    assert ("admin", GLOBAL) not in grants(user)


def test_a_token_made_by_a_token_expires_no_later_than_it(make_user):
    owner = make_user("expiring-owner", role="operator")
    soon = (timezone.now() + timezone.timedelta(days=2)).isoformat()
    short = logged_in(owner).post(TOKENS, {"name": "short", "expires_at": soon}, content_type="application/json")
    secret = short.json()["token"]
    later = (timezone.now() + timezone.timedelta(days=30)).isoformat()
    response = bearer(secret).post(TOKENS, {"name": "longer", "expires_at": later}, content_type="application/json")
    assert response.status_code == 400
    assert "expires_at" in error_fields(response)
    default = bearer(secret).post(TOKENS, {"name": "default"}, content_type="application/json")
    assert default.status_code == 201
    assert ApiToken.objects.get(name="default").expires_at <= ApiToken.objects.get(name="short").expires_at


# --- 3. only superusers touch superusers ----------------------------------------------------------------------


@pytest.fixture
def global_admin(make_user):  # type: ignore[no-untyped-def]
    return make_user("global-admin", role="admin", staff=False)


def test_a_global_admin_cannot_make_itself_staff_through_the_api(global_admin):
    response = logged_in(global_admin).patch(
        f"{USERS}{global_admin.user.pk}/", {"is_staff": True}, content_type="application/json"
    )
    assert response.status_code == 403
    assert "is_staff" in error_fields(response) or "is_staff" in response.json()["error"]["message"]
    assert not User.objects.get(pk=global_admin.user.pk).is_staff


def test_a_global_admin_cannot_create_a_staff_account(global_admin):
    response = logged_in(global_admin).post(
        USERS, {"username": "sleeper", "is_staff": True}, content_type="application/json"
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="sleeper").exists()


def test_a_global_admin_cannot_edit_or_deactivate_a_superuser(global_admin, admin_persona):
    client = logged_in(global_admin)
    for change in ({"is_active": False}, {"email": "attacker@example.test"}):
        response = client.patch(f"{USERS}{admin_persona.user.pk}/", change, content_type="application/json")
        assert response.status_code == 403, (change, response.content)
    fresh = User.objects.get(pk=admin_persona.user.pk)
    assert fresh.is_active and fresh.email == ""


def test_nobody_deactivates_or_demotes_themselves_nor_the_last_superuser(admin_persona, make_user):
    client = logged_in(admin_persona)
    myself = client.patch(f"{USERS}{admin_persona.user.pk}/", {"is_active": False}, content_type="application/json")
    assert myself.status_code == 409
    assert "own account" in myself.json()["error"]["message"]
    demote = client.patch(f"{USERS}{admin_persona.user.pk}/", {"is_staff": False}, content_type="application/json")
    assert demote.status_code == 409
    # A second superuser may not deactivate the last other one either... once only one remains.
    other = make_user("second-root", superuser=True)
    assert (
        client.patch(f"{USERS}{other.user.pk}/", {"is_active": False}, content_type="application/json").status_code
        == 200
    )
    from apps.core.errors import ConflictError
    from apps.users.services import check_user_change

    with pytest.raises(ConflictError, match="last active superuser"):
        check_user_change(by=other.user, user=admin_persona.user, changes={"is_active": False})
    assert User.objects.get(pk=admin_persona.user.pk).is_active


@pytest.fixture
def staff_global_admin(make_user):  # type: ignore[no-untyped-def]
    return make_user("staff-admin", role="admin", staff=True)


def test_a_staff_global_admin_cannot_tick_is_superuser_in_the_admin(staff_global_admin):
    client = logged_in(staff_global_admin)
    url = f"/admin/users/user/{staff_global_admin.user.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="is_superuser"' not in page.content.decode()  # shown read-only
    me = staff_global_admin.user
    response = client.post(
        url,
        {
            "username": me.username,
            "email": "",
            "first_name": "",
            "last_name": "",
            "display_name": "",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code in {200, 302}
    assert not User.objects.get(pk=me.pk).is_superuser


def test_a_staff_global_admin_cannot_change_passwords_or_delete_superusers_in_the_admin(
    staff_global_admin, admin_persona, outsider_persona
):
    client = logged_in(staff_global_admin)
    password = client.post(
        f"/admin/users/user/{outsider_persona.user.pk}/password/",
        {"password1": "New-Pass-word-123x", "password2": "New-Pass-word-123x", "usable_password": "true"},
    )
    assert password.status_code == 403
    assert User.objects.get(pk=outsider_persona.user.pk).check_password(outsider_persona.password)
    superuser_page = client.post(f"/admin/users/user/{admin_persona.user.pk}/change/", {"username": "owned"})
    assert superuser_page.status_code == 403
    delete = client.post(f"/admin/users/user/{admin_persona.user.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert User.objects.filter(pk=admin_persona.user.pk, username=admin_persona.username).exists()


# --- 4. OpenID Connect links identities, not names -------------------------------------------------------------


class _Backend:
    """The real ICC backend with the provider's answers given (the real provider's flow is tested in
    test_oidc_first_login_cannot_take_over_the_bootstrap_admin below and in tests/users/test_oidc.py)."""

    def __init__(self, userinfo: dict[str, Any]) -> None:
        from apps.users.oidc import ICCOIDCBackend

        class Backend(ICCOIDCBackend):
            def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
                return dict(userinfo)

        self.backend = Backend()

    def login(self, payload: dict[str, Any]) -> User | None:
        return self.backend.get_or_create_user("access", "id", payload)


ISSUER = "https://sso.example.test"


@pytest.fixture
def oidc_settings(settings):  # type: ignore[no-untyped-def]
    settings.OIDC_ISSUER = ISSUER
    settings.OIDC_USERNAME_CLAIM = "preferred_username"
    return settings


@pytest.mark.parametrize("claimed", ["ADMIN", "admin", "Admin"])
def test_a_chosen_username_never_logs_in_as_an_existing_superuser(oidc_settings, make_user, claimed):
    bootstrap = make_user("admin", superuser=True)
    attacker = _Backend({"sub": "mallory", "preferred_username": claimed, "email": "m@evil.test"})
    assert attacker.login({"sub": "mallory", "iss": ISSUER}) is None
    assert not OidcIdentity.objects.exists()
    denied = AuditEvent.objects.get(action="users.session.login", outcome="denied")
    assert denied.target_id == str(bootstrap.user.pk)
    assert "superuser" in denied.message


def test_a_superuser_without_a_password_is_not_attached_either(oidc_settings):
    from apps.users.services import user_create

    user_create(username="root-sso", password=None, is_superuser=True)
    assert _Backend({"sub": "x", "preferred_username": "root-sso"}).login({"sub": "x", "iss": ISSUER}) is None


def test_a_first_login_never_attaches_to_an_account_with_a_password(oidc_settings, viewer_persona):
    attacker = _Backend({"sub": "eve", "preferred_username": viewer_persona.username})
    assert attacker.login({"sub": "eve", "iss": ISSUER}) is None
    assert not OidcIdentity.objects.exists()


def test_the_email_fallback_needs_a_verified_email(oidc_settings):
    unverified = _Backend({"sub": "u1", "email": "boss@example.test", "email_verified": False})
    with pytest.raises(Exception, match="verified"):
        unverified.login({"sub": "u1", "iss": ISSUER})
    assert not User.objects.filter(username="boss@example.test").exists()
    verified = _Backend({"sub": "u2", "email": "boss@example.test", "email_verified": True})
    user = verified.login({"sub": "u2", "iss": ISSUER})
    assert user is not None and user.username == "boss@example.test"


def test_later_logins_follow_the_subject_not_the_name(oidc_settings):
    first = _Backend({"sub": "s-1", "preferred_username": "carol"}).login({"sub": "s-1", "iss": ISSUER})
    assert first is not None
    assert OidcIdentity.objects.get(issuer=ISSUER, subject="s-1").user_id == first.pk
    renamed = _Backend({"sub": "s-1", "preferred_username": "carol-renamed"}).login({"sub": "s-1", "iss": ISSUER})
    assert renamed is not None and renamed.pk == first.pk
    # Another subject claiming "carol" does not get carol's account (it is linked already).
    impostor = _Backend({"sub": "s-2", "preferred_username": "carol"}).login({"sub": "s-2", "iss": ISSUER})
    assert impostor is None
    # A userinfo answer about another subject than the ID token's is refused.
    with pytest.raises(Exception, match="another subject"):
        _Backend({"sub": "s-9", "preferred_username": "carol"}).login({"sub": "s-1", "iss": ISSUER})


# --- X-Forwarded-Proto from trusted proxies only (complements item 10) ----------------------------------------


def test_a_direct_client_cannot_claim_https_but_a_trusted_proxy_can(settings, viewer_persona):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    direct = Client(REMOTE_ADDR="203.0.113.9").get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert direct.status_code == 301 and direct["Location"].startswith("https://")
    proxied = Client(REMOTE_ADDR="10.1.2.3").get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200
