"""Compliance exceptions with four eyes (real PostgreSQL): pending until a second person with configure rights
approves, then a covered failure is ``excepted``; an expired or revoked exception stops applying at the next
evaluation; requests are checked by field; each write is audited; scoped users see only their scope's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.clusters.models import Workload
from apps.compliance import evaluation
from apps.compliance.models import Binding, Policy, PolicyException, Result
from apps.compliance.services import exceptions as services
from apps.core.access import Action, restrict
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.users.models import RoleBinding
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db(transaction=True)

PRIVILEGED = {
    "metadata": {"labels": {"app": "shop"}},
    "spec": {
        "containers": [
            {"name": "app", "image": "registry.local/legacy/shop:1.0", "securityContext": {"privileged": True}}
        ]
    },
}
CHECK = "pss.baseline.privileged"


@pytest.fixture
def shop():
    cluster = cluster_row("prod")
    app = application_row(cluster, "shop", "shop", [])
    Workload.objects.filter(application=app).update(
        pod_template=PRIVILEGED,
        labels={"team": "shop"},
        images=[{"container": "app", "image": "registry.local/legacy/shop:1.0"}],
    )
    Binding.objects.create(policy=Policy.objects.get(key="pss-baseline"))
    return Workload.objects.select_related("application").get(application=app)


def status(workload: Workload) -> str:
    evaluation.evaluate_workload(workload)
    return Result.objects.get(workload=workload, check_id=CHECK).status


def request(by, shop: Workload, **extra):
    values = {
        "policy": Policy.objects.get(key="pss-baseline"),
        "check_id": CHECK,
        "reason": "legacy image needs it until the rewrite",
        "owner": "shop-team",
        "expires_at": datetime.now(UTC) + timedelta(days=30),
        "scope_kind": "application",
        "scope_cluster": str(shop.cluster_id),
        "scope_application": "shop",
        "match_names": ["shop-*"],
        "by": by,
    }
    values.update(extra)
    return services.exception_request(**values)


def test_an_exception_applies_only_after_a_second_person_approves_it(
    shop, operator_persona, admin_persona, viewer_persona
):
    assert status(shop) == "fail"
    exception = request(operator_persona.user, shop)
    assert status(shop) == "fail", "pending: not in force"
    with pytest.raises(ForbiddenError):
        services.exception_approve(exception=exception, by=viewer_persona.user)  # no configure rights
    with pytest.raises(ForbiddenError):
        services.exception_approve(exception=exception, by=operator_persona.user)  # asked for it (and no configure)
    approved = services.exception_approve(exception=exception, by=admin_persona.user)
    assert approved.approved_by == admin_persona.user
    assert status(shop) == "excepted"
    row = Result.objects.get(workload=shop, check_id=CHECK)
    assert row.exception == approved and "shop-team" in row.message
    with pytest.raises(ConflictError):
        services.exception_approve(exception=approved, by=admin_persona.user)
    actions = list(
        AuditEvent.objects.filter(action__startswith="compliance.exception.")
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == ["compliance.exception.request", "compliance.exception.approve"]


def test_the_requester_never_approves_their_own(shop, admin_persona):
    exception = request(admin_persona.user, shop)
    with pytest.raises(ForbiddenError):
        services.exception_approve(exception=exception, by=admin_persona.user)


def test_expired_and_revoked_exceptions_stop_applying(shop, operator_persona, admin_persona):
    exception = services.exception_approve(exception=request(operator_persona.user, shop), by=admin_persona.user)
    assert status(shop) == "excepted"
    PolicyException.objects.filter(pk=exception.pk).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert status(shop) == "fail", "expired: the next evaluation fails again by itself"
    second = services.exception_approve(exception=request(operator_persona.user, shop), by=admin_persona.user)
    assert status(shop) == "excepted"
    services.exception_revoke(exception=second, by=admin_persona.user, reason="rewrite shipped")
    assert status(shop) == "fail"


@pytest.mark.parametrize(
    "narrowing",
    [{"match_names": ["blog-*"]}, {"match_labels": {"team": "blog"}}, {"image_pattern": "registry.local/new/*"}],
)
def test_an_exception_covers_only_the_matching_workloads(shop, operator_persona, admin_persona, narrowing):
    services.exception_approve(exception=request(operator_persona.user, shop, **narrowing), by=admin_persona.user)
    assert status(shop) == "fail"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expires_at": datetime.now(UTC) + timedelta(days=400)}, "expires_at"),
        ({"expires_at": datetime.now(UTC) - timedelta(days=1)}, "expires_at"),
        ({"reason": " "}, "reason"),
        ({"owner": ""}, "owner"),
        ({"check_id": "pss.no-such-check"}, "check_id"),
        ({"scope_kind": "cluster"}, "scope_application"),
        ({"ticket_url": "javascript:alert(1)"}, "ticket_url"),
        ({"match_names": "shop-*"}, "match_names"),
    ],
)
def test_a_bad_request_names_its_field_and_stores_nothing(shop, operator_persona, change, field):
    with pytest.raises(DomainError) as refused:
        request(operator_persona.user, shop, **change)
    assert refused.value.field == field
    assert not PolicyException.objects.exists()


def test_scoped_users_see_only_their_scopes_exceptions(shop, make_user, operator_persona):
    request(operator_persona.user, shop)
    request(operator_persona.user, shop, scope_application="blog")
    scoped = make_user("shop-viewer")
    RoleBinding.objects.create(
        user=scoped.user,
        role="viewer",
        scope_kind="application",
        scope_cluster=str(shop.cluster_id),
        scope_application="shop",
    )
    seen = restrict(scoped.user, Action.READ, PolicyException.objects.all())
    assert [e.scope_application for e in seen] == ["shop"]
    outsider = make_user("nobody")
    assert not restrict(outsider.user, Action.READ, PolicyException.objects.all()).exists()
