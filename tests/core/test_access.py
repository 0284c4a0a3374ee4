"""Access control: the rules, restrict() on a scoped model, and a permission matrix over every endpoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import EventInput, audit_record_many
from apps.core.access import GLOBAL, Action, Role, Scope, ScopeKind, can_at, restrict, role_allows
from apps.core.api.viewsets import RestrictedViewSetMixin
from apps.users.models import RoleBinding, Team

# --- the rules as pure functions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("viewer", {"read"}),
        ("operator", {"read", "act", "override_freeze"}),
        ("admin", {"read", "act", "override_freeze", "configure"}),
    ],
)
def test_the_permission_matrix(role, allowed):
    assert {action for action in Action.values if role_allows(role, action)} == allowed


def test_scopes_cover_what_lies_below_them():
    cluster = Scope(ScopeKind.CLUSTER, cluster="c1")
    namespace = Scope(ScopeKind.NAMESPACE, cluster="c1", namespace="shop")
    application = Scope(ScopeKind.APPLICATION, cluster="c1", application="cart")
    assert GLOBAL.covers("c9", "x", "y")
    assert cluster.covers("c1", "anything", "")
    assert not cluster.covers("c2", "anything", "")
    assert namespace.covers("c1", "shop", "cart")
    assert not namespace.covers("c1", "billing", "cart")
    assert not namespace.covers("c2", "shop", "")
    assert application.covers("c1", "shop", "cart")
    assert application.covers("c1", "other-ns", "cart"), "an application may span namespaces"
    assert not application.covers("c1", "shop", "checkout")


# --- restrict() on a scoped model (audit events carry cluster / namespace / application) ------------------

pytestmark = pytest.mark.django_db


def scoped_events() -> dict[str, int]:
    specs = {
        "global": {},
        "c1": {"cluster": "c1"},
        "c1-shop": {"cluster": "c1", "namespace": "shop"},
        "c1-shop-cart": {"cluster": "c1", "namespace": "shop", "application": "cart"},
        "c1-billing-cart": {"cluster": "c1", "namespace": "billing", "application": "cart"},
        "c2-shop": {"cluster": "c2", "namespace": "shop"},
    }
    events = audit_record_many(EventInput(action=f"tests.{name}", scope=scope) for name, scope in specs.items())
    return {e.action.split(".", 1)[1]: e.seq for e in events}


def visible(user, action: str = Action.READ) -> set[str]:
    return {
        a.split(".", 1)[1]
        for a in restrict(user, action, AuditEvent.objects.filter(action__startswith="tests.")).values_list(
            "action", flat=True
        )
    }


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"scope_kind": "global"}, {"global", "c1", "c1-shop", "c1-shop-cart", "c1-billing-cart", "c2-shop"}),
        ({"scope_kind": "cluster", "scope_cluster": "c1"}, {"c1", "c1-shop", "c1-shop-cart", "c1-billing-cart"}),
        ({"scope_kind": "namespace", "scope_cluster": "c1", "scope_namespace": "shop"}, {"c1-shop", "c1-shop-cart"}),
        (
            {"scope_kind": "application", "scope_cluster": "c1", "scope_application": "cart"},
            {"c1-shop-cart", "c1-billing-cart"},
        ),
    ],
)
def test_restrict_follows_the_binding_scope(make_user, scope, expected):
    scoped_events()
    person = make_user("scoped")
    RoleBinding.objects.create(user=person.user, role=Role.VIEWER, **scope)
    assert visible(person.user) == expected
    assert visible(person.user, Action.ACT) == set(), "a viewer reads but does not act"


def test_expired_bindings_grant_nothing_and_team_bindings_count(make_user):
    scoped_events()
    person = make_user("tina")
    RoleBinding.objects.create(user=person.user, role=Role.ADMIN, expires_at=timezone.now() - timedelta(seconds=1))
    assert visible(person.user) == set()
    team = Team.objects.create(name="ops")
    team.members.add(person.user)
    RoleBinding.objects.create(team=team, role=Role.OPERATOR, scope_kind="cluster", scope_cluster="c2")
    fresh = type(person.user).objects.get(pk=person.user.pk)  # grants are computed once per user object
    assert visible(fresh) == {"c2-shop"}
    assert visible(fresh, Action.ACT) == {"c2-shop"}
    assert visible(fresh, Action.CONFIGURE) == set()


def test_superusers_reach_everything_and_anonymous_nothing(admin_persona):
    from django.contrib.auth.models import AnonymousUser

    scoped_events()
    assert len(visible(admin_persona.user, Action.CONFIGURE)) == 6
    assert visible(AnonymousUser()) == set()


def test_can_at_needs_a_grant_containing_the_target_scope(make_user):
    person = make_user("nina")
    RoleBinding.objects.create(user=person.user, role=Role.ADMIN, scope_kind="cluster", scope_cluster="c1")
    assert can_at(person.user, Action.CONFIGURE, Scope(ScopeKind.NAMESPACE, cluster="c1", namespace="shop"))
    assert not can_at(person.user, Action.CONFIGURE, Scope(ScopeKind.NAMESPACE, cluster="c2", namespace="shop"))
    assert not can_at(person.user, Action.CONFIGURE, GLOBAL), "a cluster admin is no global admin"


# --- the permission matrix over every API endpoint and portal page ---------------------------------------

PERSONAS = (
    "superuser",
    "admin",
    "operator",
    "viewer",
    "scoped_viewer",
    "outsider",
    "expired",
    "anonymous",
    "revoked_token",
)
UNAUTHENTICATED = ("anonymous", "revoked_token")


@pytest.fixture
def personas(make_user):
    people = {
        "superuser": make_user("p-super", superuser=True),
        "admin": make_user("p-admin", role="admin"),
        "operator": make_user("p-operator", role="operator"),
        "viewer": make_user("p-viewer", role="viewer"),
        "scoped_viewer": make_user("p-scoped"),
        "outsider": make_user("p-outsider"),
        "expired": make_user("p-expired"),
    }
    RoleBinding.objects.create(
        user=people["scoped_viewer"].user, role="viewer", scope_kind="cluster", scope_cluster="c1"
    )
    RoleBinding.objects.create(
        user=people["expired"].user, role="admin", expires_at=timezone.now() - timedelta(hours=1)
    )
    scoped_events()
    from apps.users.tokens import token_create, token_revoke

    token, secret = token_create(owner=people["admin"].user, name="old", by=people["admin"].user)
    token_revoke(token=token, by=people["admin"].user)
    people["revoked_secret"] = secret
    return people


def client_for(personas, name: str) -> Client:
    if name == "revoked_token":
        return Client(HTTP_AUTHORIZATION=f"Bearer {personas['revoked_secret']}")
    client = Client()
    if name != "anonymous":
        assert client.login(username=personas[name].username, password=personas[name].password)
    return client


def api_viewsets() -> list[tuple[str, type]]:
    """Every viewset routed under /api/v1/, found by walking the URL resolver (new endpoints included)."""
    found: dict[str, type] = {}

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and (getattr(p.callback, "actions", None) or {}).get("get") == "list":
                found[(prefix + str(p.pattern)).replace("^", "").replace("$", "")] = p.callback.cls

    walk(get_resolver().url_patterns, "/")
    return sorted(found.items())


def test_every_api_viewset_goes_through_restrict():
    viewsets = api_viewsets()
    assert len(viewsets) >= 2
    for route, cls in viewsets:
        assert issubclass(cls, RestrictedViewSetMixin), f"{route}: {cls.__name__} bypasses restrict()"


@pytest.mark.parametrize("persona", PERSONAS)
def test_api_lists_never_show_more_than_restrict_allows(personas, persona):
    client = client_for(personas, persona)
    for route, cls in api_viewsets():
        response = client.get(route, {"limit": 500})
        if persona in UNAUTHENTICATED:
            assert response.status_code in (401, 403), route
            continue
        assert response.status_code == 200, (route, response.status_code)
        model = cls.serializer_class.Meta.model
        user = personas[persona].user
        allowed = set(restrict(user, Action.READ, model.objects.all()).values_list("pk", flat=True))
        shown = {row[model._meta.pk.attname] for row in response.json()["results"]}
        leaked = shown - allowed
        assert not leaked, f"{route} as {persona}: shows {len(leaked)} row(s) restrict() does not allow"


@pytest.mark.parametrize(
    ("persona", "list_status", "own_status", "other_status", "create_status"),
    [
        ("superuser", 200, 200, 200, 201),
        ("admin", 200, 200, 200, 201),
        ("operator", 200, 200, 403, 403),
        ("viewer", 200, 200, 403, 403),
        ("scoped_viewer", 200, 200, 404, 403),
        ("outsider", 200, 200, 404, 403),
        ("expired", 200, 200, 404, 403),
        ("anonymous", 401, 401, 401, 401),
        ("revoked_token", 401, 401, 401, 401),
    ],
)
def test_users_api_matrix(personas, persona, list_status, own_status, other_status, create_status):
    client = client_for(personas, persona)
    me = personas[persona].user if persona in personas and persona != "revoked_secret" else personas["admin"].user
    # Another plain account (superuser accounts are for superusers only: tests/security covers that).
    other = personas["viewer"].user if persona != "viewer" else personas["operator"].user
    assert client.get("/api/v1/users/").status_code == list_status
    assert client.get(f"/api/v1/users/{me.pk}/").status_code == own_status
    response = client.patch(f"/api/v1/users/{other.pk}/", {"display_name": "x"}, content_type="application/json")
    assert response.status_code == other_status, response.content
    response = client.post("/api/v1/users/", {"username": f"new-{persona}"}, content_type="application/json")
    assert response.status_code == create_status, response.content


@pytest.mark.parametrize("persona", PERSONAS)
def test_portal_pages_need_a_login_and_never_fail(personas, persona):
    client = client_for(personas, persona)
    pages = [
        "/",
        "/clusters/",
        "/clusters/applications/",
        "/scaler/",
        "/cron/",
        "/compliance/",
        "/traffic/",
        "/audit/",
        "/users/",
        "/fragments/dashboard/counters/",
        "/audit/export.csv",
    ]
    for page in pages:
        response = client.get(page)
        if persona in UNAUTHENTICATED:  # the portal ignores bearer tokens: a login is needed
            assert response.status_code == 302, page
            assert response["Location"].startswith("/accounts/login/")
        else:
            assert response.status_code == 200, (page, persona, response.status_code)
            if response.get("Content-Type", "").startswith("text/html") and "fragments" not in page:
                assert "What can I do here?" in response.content.decode(), page


def test_the_admin_follows_icc_roles_for_staff(make_user, outsider_persona):
    reader = make_user("staff-reader", staff=True, role="viewer")
    client = client_for({"r": reader}, "r")
    assert client.get("/admin/users/user/").status_code == 200
    page = client.get(f"/admin/users/user/{outsider_persona.user.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode(), "a viewer sees, but cannot save"
    assert client.get("/admin/users/user/add/").status_code == 403
    assert client.get("/admin/audit/auditevent/").status_code == 200

    nobody = make_user("staff-nobody", staff=True)
    assert client_for({"n": nobody}, "n").get("/admin/users/user/").status_code == 403

    boss = make_user("staff-admin", staff=True, role="admin")
    assert client_for({"b": boss}, "b").get("/admin/users/user/add/").status_code == 200
