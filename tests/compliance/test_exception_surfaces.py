"""Compliance exceptions through the API and the portal with the personas (real PostgreSQL): request, approve by a
second person with configure rights, revoke with a reason; the attacks — a viewer requesting, an outsider looking,
a namespace operator reaching beyond their namespace or asking for a global exception, the requester approving
their own; the expiring-soon filter and section; bad input named by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.clusters.models import Workload
from apps.compliance import evaluation
from apps.compliance.models import Binding, Policy, PolicyException, Result
from apps.compliance.services import exceptions as services
from tests.support.clients import error_fields, forced_login, html, post_json, results, with_binding
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

API = "/api/v1/compliance/exceptions/"
PAGE = "/compliance/exceptions/"
CHECK = "pss.baseline.privileged"
PRIVILEGED = {
    "metadata": {"labels": {"app": "shop"}},
    "spec": {
        "containers": [{"name": "app", "image": "registry.local/shop:1.0", "securityContext": {"privileged": True}}]
    },
}


def soon(days: float = 30) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


@pytest.fixture
def estate():
    """Applications shop and blog (namespaces shop and blog) on one cluster, privileged, scanned against the
    baseline bound globally: each fails pss.baseline.privileged."""
    cluster = cluster_row("prod")
    shop = application_row(cluster, "shop", "shop", [])
    blog = application_row(cluster, "blog", "blog", [])
    Workload.objects.update(pod_template=PRIVILEGED, desired_replicas=1)
    Workload.objects.filter(name="shop-w").update(labels={"app": "shop"})
    Binding.objects.create(policy=Policy.objects.get(key="pss-baseline"))
    evaluation.scan()
    return {"cluster": cluster, "shop": shop, "blog": blog}


@pytest.fixture
def second_admin(make_user):
    """Configures everywhere (a global admin binding) and is not the superuser persona."""
    return make_user("sam-second-admin", role="admin")


@pytest.fixture
def shop_operator(make_user, estate):
    """Operates namespace shop of the cluster only."""
    return with_binding(make_user("ned-ns-operator"), "operator", estate["cluster"], namespace="shop")


def body(cluster: Any, **extra: Any) -> dict[str, Any]:
    values = {
        "policy": "pss-baseline",
        "check_id": CHECK,
        "scope_kind": "namespace",
        "scope_cluster": str(cluster.pk),
        "scope_namespace": "shop",
        "match_names": ["shop-*"],
        "match_labels": {},
        "reason": "the legacy image needs it until the rewrite",
        "owner": "shop-team",
        "ticket_url": "https://tickets.example/SHOP-1",
        "expires_at": soon().isoformat(),
    }
    values.update(extra)
    return values


def made(cluster: Any, namespace: str = "shop", kind: str = "namespace", days: float = 30, **extra: Any):
    """An exception requested by ICC itself (no requester), at ``kind`` scope."""
    scope: dict[str, Any] = {"scope_kind": kind}
    if kind != "global":
        scope["scope_cluster"] = str(cluster.pk)
    if kind == "namespace":
        scope["scope_namespace"] = namespace
    return services.exception_request(
        policy=Policy.objects.get(key="pss-baseline"),
        check_id=CHECK,
        reason="because",
        owner="owner",
        expires_at=soon(days),
        **scope,
        **extra,
    )


def shop_status() -> str:
    evaluation.scan()
    return str(Result.objects.get(workload__name="shop-w", check_id=CHECK).status)


# --- API ----------------------------------------------------------------------------------------------------------


def test_request_approve_and_revoke_through_the_api(estate, operator_persona, second_admin):
    operator, admin = forced_login(operator_persona.user), forced_login(second_admin.user)
    created = post_json(operator, API, body(estate["cluster"]))
    assert created.status_code == 201, created.content
    row = created.json()
    assert row["state"] == "pending" and row["requested_by"] == operator_persona.username
    assert row["policy"] == "pss-baseline" and row["match_names"] == ["shop-*"]
    assert shop_status() == "fail", "pending: not in force"

    assert post_json(operator, f"{API}{row['id']}/approve/").status_code == 403  # no configure rights (and asked)
    approved = post_json(admin, f"{API}{row['id']}/approve/")
    assert approved.status_code == 200, approved.content
    assert approved.json()["state"] == "active" and approved.json()["approved_by"] == second_admin.username
    assert shop_status() == "excepted"
    again = post_json(admin, f"{API}{row['id']}/approve/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    no_reason = post_json(admin, f"{API}{row['id']}/revoke/", {})
    assert no_reason.status_code == 400 and "reason" in error_fields(no_reason)
    assert post_json(operator, f"{API}{row['id']}/revoke/", {"reason": "mine"}).status_code == 403
    revoked = post_json(admin, f"{API}{row['id']}/revoke/", {"reason": "the rewrite shipped"})
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert shop_status() == "fail"
    assert post_json(admin, f"{API}{row['id']}/revoke/", {"reason": "twice"}).status_code == 409

    assert forced_login(operator_persona.user).get(f"{API}{row['id']}/").json()["state"] == "revoked"
    actions = list(
        AuditEvent.objects.filter(action__startswith="compliance.exception.").order_by("seq").values_list("action")
    )
    assert [a for (a,) in actions] == [
        "compliance.exception.request",
        "compliance.exception.approve",
        "compliance.exception.revoke",
    ]


def test_the_requester_never_approves_their_own_through_the_api(estate, second_admin, admin_persona):
    mine = forced_login(second_admin.user)
    created = post_json(mine, API, body(estate["cluster"])).json()
    refused = post_json(mine, f"{API}{created['id']}/approve/")
    assert refused.status_code == 403, refused.content
    assert PolicyException.objects.get(pk=created["id"]).approved_at is None
    assert post_json(forced_login(admin_persona.user), f"{API}{created['id']}/approve/").status_code == 200


def test_a_viewer_cannot_request_an_exception(estate, viewer_persona):
    viewer = forced_login(viewer_persona.user)
    refused = post_json(viewer, API, body(estate["cluster"]))
    assert refused.status_code == 403, refused.content
    assert not PolicyException.objects.exists()
    assert viewer.get(f"{PAGE}new/").status_code == 403
    assert viewer.post(f"{PAGE}new/", {"policy": "pss-baseline"}).status_code == 403
    assert not PolicyException.objects.exists()


def test_an_outsider_sees_and_touches_nothing(estate, outsider_persona):
    exception = made(estate["cluster"])
    outsider = forced_login(outsider_persona.user)
    assert results(outsider.get(API)) == []
    assert outsider.get(f"{API}{exception.pk}/").status_code == 404
    assert post_json(outsider, f"{API}{exception.pk}/approve/").status_code == 404
    assert post_json(outsider, f"{API}{exception.pk}/revoke/", {"reason": "x"}).status_code == 404
    assert post_json(outsider, API, body(estate["cluster"])).status_code == 403
    assert outsider.get(f"{PAGE}{exception.pk}/").status_code == 404
    assert f'data-exception="{exception.pk}"' not in html(outsider.get(PAGE))
    exception.refresh_from_db()
    assert exception.approved_at is None and exception.revoked_at is None


def test_a_namespace_operator_sees_and_requests_only_within_their_namespace(estate, shop_operator):
    cluster = estate["cluster"]
    in_shop = made(cluster, "shop")
    in_blog = made(cluster, "blog")
    cluster_wide = made(cluster, kind="cluster")
    everywhere = made(cluster, kind="global")
    client = forced_login(shop_operator.user)

    assert {row["id"] for row in results(client.get(API))} == {in_shop.pk}
    for hidden in (in_blog, cluster_wide, everywhere):
        assert client.get(f"{API}{hidden.pk}/").status_code == 404
        assert client.get(f"{PAGE}{hidden.pk}/").status_code == 404
    page = html(client.get(PAGE))
    assert f'data-exception="{in_shop.pk}"' in page and f'data-exception="{in_blog.pk}"' not in page

    for scope in (
        {"scope_kind": "global", "scope_cluster": "", "scope_namespace": ""},
        {"scope_kind": "cluster", "scope_namespace": ""},
        {"scope_namespace": "blog"},
        {"scope_kind": "application", "scope_namespace": "", "scope_application": "shop"},
    ):
        refused = post_json(client, API, body(cluster, **scope))
        assert refused.status_code == 403, (scope, refused.content)
    assert PolicyException.objects.count() == 4
    created = post_json(client, API, body(cluster))
    assert created.status_code == 201, created.content
    assert post_json(client, f"{API}{created.json()['id']}/approve/").status_code == 403, "operators do not approve"


def test_the_expiring_and_state_filters(estate, second_admin):
    cluster = estate["cluster"]
    expiring = services.exception_approve(exception=made(cluster, days=2), by=second_admin.user)
    later = services.exception_approve(exception=made(cluster, days=20), by=second_admin.user)
    pending_soon = made(cluster, days=1)
    expired = services.exception_approve(exception=made(cluster, days=3), by=second_admin.user)
    PolicyException.objects.filter(pk=expired.pk).update(expires_at=datetime.now(UTC) - timedelta(hours=1))
    client = forced_login(second_admin.user)

    def ids(**params: Any) -> set[int]:
        return {row["id"] for row in results(client.get(API, params))}

    assert ids(expiring_within_days=7) == {expiring.pk}
    assert ids(expiring_within_days=30) == {expiring.pk, later.pk}
    assert ids(state="pending") == {pending_soon.pk}
    assert ids(state="active") == {expiring.pk, later.pk}
    assert ids(state="expired") == {expired.pk}
    assert ids(state="revoked") == set()
    assert ids(policy="pss-baseline", check=CHECK, scope_kind="namespace", namespace="shop", cluster=cluster.pk) == {
        expiring.pk,
        later.pk,
        pending_soon.pk,
        expired.pk,
    }
    assert ids(policy="best-practice") == set() and ids(namespace="blog") == set()

    page = html(client.get(PAGE))
    section = page.split('id="exceptions-expiring"', 1)[1].split("</article>", 1)[0]
    assert f'data-expiring="{expiring.pk}"' in section
    assert all(f'data-expiring="{e.pk}"' not in section for e in (later, pending_soon, expired))
    filtered = html(client.get(PAGE, {"state": "expired"}))
    table = filtered.split('id="exceptions-table"', 1)[1]
    assert f'data-exception="{expired.pk}"' in table and f'data-exception="{later.pk}"' not in table


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("state", "forgotten"), ("expiring_within_days", "1.5"), ("expiring_within_days", "-1"), ("cluster", "x")],
)
def test_a_bad_filter_is_a_400_naming_it(estate, viewer_persona, parameter, value):
    response = forced_login(viewer_persona.user).get(API, {parameter: value})
    assert response.status_code == 400, response.content
    assert parameter in error_fields(response)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": " "}, "reason"),
        ({"expires_at": soon(400).isoformat()}, "expires_at"),
        ({"expires_at": "next week"}, "expires_at"),
        ({"policy": "no-such-policy"}, "policy"),
        ({"check_id": "pss.no-such-check"}, "check_id"),
        ({"scope_namespace": ""}, "scope_namespace"),
        ({"scope_cluster": "987654"}, "scope_cluster"),
        ({"ticket_url": "javascript:alert(1)"}, "ticket_url"),
        ({"match_labels": ["team"]}, "match_labels"),
        ({"approved_by": "me"}, "approved_by"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field_and_stores_nothing(estate, admin_persona, change, field):
    response = post_json(forced_login(admin_persona.user), API, body(estate["cluster"], **change))
    assert response.status_code == 400, response.content
    assert field in error_fields(response)
    assert not PolicyException.objects.exists()


# --- portal -------------------------------------------------------------------------------------------------------


def test_the_portal_request_approve_and_revoke_flow(estate, operator_persona, second_admin, settings):
    settings.COMPLIANCE_EXCEPTION_MAX_DAYS = 45
    operator, admin = forced_login(operator_persona.user), forced_login(second_admin.user)
    form = html(operator.get(f"{PAGE}new/", {"policy": "pss-baseline", "check_id": CHECK}))
    assert "<strong data-max-days>45</strong>" in form and "at most 45 days" in form
    assert f'value="{CHECK}"' in form, "prefilled from the link on a result"

    fields = {
        "policy": "pss-baseline",
        "check_id": CHECK,
        "scope_kind": "namespace",
        "scope_cluster": str(estate["cluster"].pk),
        "scope_namespace": "shop",
        "match_names": "shop-*, shop-w",
        "match_labels": "app=shop",
        "reason": "legacy image",
        "owner": "shop-team",
        "expires_at": soon(60).strftime("%Y-%m-%dT%H:%M"),
    }
    too_late = operator.post(f"{PAGE}new/", fields)
    assert too_late.status_code == 400 and 'data-error-for="expires_at"' in html(too_late)
    assert operator.post(f"{PAGE}new/", {**fields, "match_labels": "app"}).status_code == 400
    assert not PolicyException.objects.exists()

    created = operator.post(f"{PAGE}new/", {**fields, "expires_at": soon(10).strftime("%Y-%m-%dT%H:%M")})
    assert created.status_code == 302, html(created)
    exception = PolicyException.objects.get()
    assert exception.match_names == ["shop-*", "shop-w"] and exception.match_labels == {"app": "shop"}
    assert created["Location"] == f"{PAGE}{exception.pk}/"

    own = html(operator.get(f"{PAGE}{exception.pk}/"))
    assert 'data-state="pending"' in own and 'id="exception-approve"' not in own and "exception-four-eyes" in own
    assert 'id="exception-revoke-submit"' not in own, "operators do not revoke"
    assert operator.post(f"{PAGE}{exception.pk}/approve/").status_code == 403

    page = html(admin.get(f"{PAGE}{exception.pk}/"))
    assert 'id="exception-approve"' in page and 'id="exception-revoke-submit"' in page
    assert admin.post(f"{PAGE}{exception.pk}/approve/").status_code == 302
    assert 'data-state="active"' in html(admin.get(f"{PAGE}{exception.pk}/"))
    assert shop_status() == "excepted"

    unconfirmed = admin.post(f"{PAGE}{exception.pk}/revoke/", {"reason": "done"})
    assert unconfirmed.status_code == 400 and 'data-error-for="confirm"' in html(unconfirmed)
    assert admin.post(f"{PAGE}{exception.pk}/revoke/", {"confirm": "on"}).status_code == 400
    exception.refresh_from_db()
    assert exception.revoked_at is None
    assert admin.post(f"{PAGE}{exception.pk}/revoke/", {"reason": "done", "confirm": "on"}).status_code == 302
    exception.refresh_from_db()
    assert exception.revoked_at is not None
    assert shop_status() == "fail"


def test_an_excepted_result_links_to_its_exception(estate, second_admin, viewer_persona):
    exception = services.exception_approve(exception=made(estate["cluster"]), by=second_admin.user)
    assert shop_status() == "excepted"
    result = Result.objects.get(workload__name="shop-w", check_id=CHECK)
    page = html(forced_login(viewer_persona.user).get(f"/compliance/results/{result.pk}/"))
    assert f'href="{PAGE}{exception.pk}/"' in page
    detail = html(forced_login(viewer_persona.user).get(f"{PAGE}{exception.pk}/"))
    assert f'data-covered="{result.pk}"' in detail and "blog-w" not in detail
    listed = html(forced_login(viewer_persona.user).get("/compliance/", {"status": "excepted"}))
    assert f'href="/compliance/results/{result.pk}/" data-result-link' in listed
    assert f'href="{PAGE}{exception.pk}/" data-exception-link' in listed
    assert f'href="{PAGE}" id="compliance-exceptions-link"' in listed
