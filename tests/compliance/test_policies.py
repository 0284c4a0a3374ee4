"""Compliance policies and bindings through the services and the API (real PostgreSQL): custom CEL policies are
compiled on save (a compile error is a 400 naming the field with its position), versioned, audited and deleted only
with their key typed; built-ins are only enabled, disabled and bound; a policy is tested against an observed
workload before saving (a runtime error is an ``error`` verdict); a dry run lists the workloads a binding would fail
or deny, honouring active exceptions; nobody writes or sees beyond their rights (the attacks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.clusters.models import Workload
from apps.compliance import dryrun, evaluation
from apps.compliance.models import Binding, Policy, PolicyException, Result
from apps.compliance.services import policies as services
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from tests.support.clients import error_fields, forced_login, patch_json, post_json, results, with_binding
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

API = "/api/v1/compliance"
PRIVILEGED = {
    "metadata": {"labels": {"app": "x"}},
    "spec": {"containers": [{"name": "app", "image": "registry.local/x:1.0", "securityContext": {"privileged": True}}]},
}
PLAIN = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "app", "image": "registry.local/x:1"}]}}
CHECK = "pss.baseline.privileged"
TWO_REPLICAS = [{"expression": "object.spec.replicas >= 2", "message": "run at least two replicas"}]


@pytest.fixture
def estate():
    """One cluster: shop and blog (privileged, one replica each, in their namespaces) and docs (compliant)."""
    cluster = cluster_row("prod")
    shop = application_row(cluster, "shop", "shop", [])
    blog = application_row(cluster, "blog", "blog", [])
    docs = application_row(cluster, "docs", "docs", [])
    Workload.objects.update(pod_template=PRIVILEGED, desired_replicas=1)
    Workload.objects.filter(application=docs).update(pod_template=PLAIN, desired_replicas=3)
    workloads = {w.name: w for w in Workload.objects.select_related("application")}
    return {"cluster": cluster, "shop": shop, "blog": blog, "docs": docs, **workloads}


def baseline() -> Policy:
    return Policy.objects.get(key="pss-baseline")


def actions(prefix: str) -> list[str]:
    return list(AuditEvent.objects.filter(action__startswith=prefix).order_by("seq").values_list("action", flat=True))


def cel_policy(by, key: str = "two-replicas", **extra) -> Policy:
    values = {"name": "Two replicas", "validations": TWO_REPLICAS, **extra}
    return services.policy_create(key=key, by=by, **values)


# --- policies -------------------------------------------------------------------------------------------------------


def test_an_admin_creates_changes_and_deletes_a_cel_policy_and_each_step_is_audited(estate, admin_persona):
    client = forced_login(admin_persona.user)
    created = post_json(client, f"{API}/policies/", {"key": "two-replicas", "name": "HA", "validations": TWO_REPLICAS})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["kind"], body["version"], body["bindings_count"]) == ("cel", 1, 0)
    assert [c["id"] for c in body["checks"]] == ["two-replicas.validations[0]"]
    pk = body["id"]

    changed = patch_json(client, f"{API}/policies/{pk}/", {"validations": [*TWO_REPLICAS, {"expression": "true"}]})
    assert changed.status_code == 200, changed.content
    assert changed.json()["version"] == 2 and len(changed.json()["checks"]) == 2

    refused = client.delete(f"{API}/policies/{pk}/?confirm=wrong")
    assert refused.status_code == 400 and "confirm" in error_fields(refused)
    assert client.delete(f"{API}/policies/{pk}/?confirm=two-replicas").status_code == 204
    assert not Policy.objects.filter(pk=pk).exists()
    assert actions("compliance.policy.") == [
        "compliance.policy.create",
        "compliance.policy.update",
        "compliance.policy.delete",
    ]


def test_a_compile_error_is_a_400_naming_the_field_with_its_position_and_nothing_is_stored(estate, admin_persona):
    client = forced_login(admin_persona.user)
    broken = [{"expression": "true"}, {"expression": "object.spec.replicas >= "}]
    response = post_json(client, f"{API}/policies/", {"key": "broken", "name": "B", "validations": broken})
    assert response.status_code == 400, response.content
    assert "validations[1].expression" in error_fields(response)
    position = response.json()["error"]["position"]
    assert position["field"] == "validations[1].expression"
    assert position["line"] == 1 and position["column"] >= 20, position
    assert not Policy.objects.filter(key="broken").exists()

    existing = cel_policy(admin_persona.user)
    bad_variable = patch_json(
        client, f"{API}/policies/{existing.pk}/", {"variables": [{"name": "n", "expression": "object.(("}]}
    )
    assert bad_variable.status_code == 400 and "variables[0].expression" in error_fields(bad_variable)
    existing.refresh_from_db()
    assert existing.version == 1 and existing.variables == []


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"key": "Not A Slug"}, "key"),
        ({"key": "pss-baseline"}, "key"),
        ({"name": " "}, "name"),
        ({"severity": "urgent"}, "severity"),
        ({"validations": [{"expression": "true"}] * 21}, "validations"),
        ({"validations": [{"expression": "1 == 1 && " * 500 + "true"}]}, "validations[0].expression"),
        ({"variables": [{"name": "v", "expression": "1"}] * 21}, "variables"),
        ({"match": {"kinds": "Deployment"}}, "match.kinds"),
        ({"match": {"owners": []}}, "match"),
    ],
)
def test_a_bad_policy_names_its_field(estate, admin_persona, values, field):
    body = {"key": "p", "name": "P", "validations": TWO_REPLICAS, **values}
    with pytest.raises(DomainError) as refused:
        services.policy_create(by=admin_persona.user, **body)
    assert refused.value.field == field
    assert not Policy.objects.filter(kind="cel").exists()


def test_built_in_policies_are_only_enabled_disabled_and_bound(estate, admin_persona):
    client = forced_login(admin_persona.user)
    pk = baseline().pk
    edit = patch_json(client, f"{API}/policies/{pk}/", {"validations": TWO_REPLICAS})
    assert edit.status_code == 409, edit.content
    assert client.delete(f"{API}/policies/{pk}/?confirm=pss-baseline").status_code == 409
    disabled = patch_json(client, f"{API}/policies/{pk}/", {"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert actions("compliance.policy.") == ["compliance.policy.disable"]
    listed = {p["key"]: p for p in results(client.get(f"{API}/policies/"))}
    assert {"pss-baseline", "pss-restricted", "best-practice"} <= set(listed)
    privileged = next(c for c in listed["pss-baseline"]["checks"] if c["id"] == CHECK)
    assert privileged["severity"] == "critical" and privileged["remediation"] and privileged["category"]


def test_a_change_that_drops_a_bound_check_is_refused(estate, admin_persona):
    policy = cel_policy(admin_persona.user, validations=[*TWO_REPLICAS, {"expression": "true"}])
    services.binding_create(policy=policy, check_id="two-replicas.validations[1]", by=admin_persona.user)
    with pytest.raises(ConflictError) as refused:
        services.policy_update(policy=policy, validations=TWO_REPLICAS, by=admin_persona.user)
    assert refused.value.field == "validations"
    services.policy_update(policy=policy, name="still two", by=admin_persona.user)
    assert Policy.objects.get(pk=policy.pk).version == 2


# --- testing before saving ------------------------------------------------------------------------------------------


def test_a_policy_is_tested_against_a_workload_without_saving(estate, admin_persona):
    client = forced_login(admin_persona.user)
    policy = cel_policy(admin_persona.user)
    shop, docs = estate["shop-w"], estate["docs-w"]
    answer = post_json(client, f"{API}/policies/{policy.pk}/test/", {"workload": shop.pk})
    assert answer.status_code == 200, answer.content
    assert answer.json()["matched"] is True
    assert [(v["status"], v["message"]) for v in answer.json()["verdicts"]] == [("fail", "run at least two replicas")]

    unsaved = {"workload": docs.pk, "validations": [{"expression": "object.spec.replicas >= params.min"}]}
    unsaved["params"] = {"min": 5}
    answer = post_json(client, f"{API}/policies/{policy.pk}/test/", unsaved)
    assert [v["status"] for v in answer.json()["verdicts"]] == ["fail"]
    unsaved["params"] = {"min": 3}
    assert [
        v["status"] for v in post_json(client, f"{API}/policies/{policy.pk}/test/", unsaved).json()["verdicts"]
    ] == ["pass"]
    policy.refresh_from_db()
    assert policy.version == 1 and policy.validations == TWO_REPLICAS
    assert actions("compliance.policy.") == ["compliance.policy.create"]

    left_out = post_json(
        client, f"{API}/policies/{policy.pk}/test/", {"workload": shop.pk, "match": {"namespaces": ["b*"]}}
    )
    assert left_out.json() == {"matched": False, "verdicts": []}
    compile_error = post_json(
        client, f"{API}/policies/{policy.pk}/test/", {"workload": shop.pk, "validations": [{"expression": "(("}]}
    )
    assert compile_error.status_code == 400 and compile_error.json()["error"]["position"]["line"] == 1


def test_a_runtime_error_on_one_workload_is_an_error_verdict_not_a_crash(estate, admin_persona):
    deep = [{"expression": "object.spec.template.spec.nodeSelector.zone == 'a'"}, {"expression": "true"}]
    answer = dryrun.policy_test(validations=deep, workload=estate["shop-w"], by=admin_persona.user)
    statuses = [v["status"] for v in answer["verdicts"]]
    assert statuses == ["error", "pass"], answer
    assert "validations[0]" in answer["verdicts"][0]["message"]

    policy = cel_policy(admin_persona.user, key="zones", validations=deep)
    services.binding_create(policy=policy, by=admin_persona.user)
    assert evaluation.scan() == 3
    assert set(
        Result.objects.filter(policy="zones", check_id="zones.validations[0]").values_list("status", flat=True)
    ) == {"error"}


# --- dry run --------------------------------------------------------------------------------------------------------


def enforce_privileged(client, **extra):
    body = {"policy": baseline().pk, "check_id": CHECK, "mode": "enforce", **extra}
    return post_json(client, f"{API}/bindings/dry-run/", body)


def test_a_dry_run_lists_the_workloads_that_would_be_denied_and_honours_exceptions(estate, admin_persona):
    client = forced_login(admin_persona.user)
    run = enforce_privileged(client)
    assert run.status_code == 200, run.content
    found = run.json()
    assert {f["workload_name"]: f["outcome"] for f in found["findings"]} == {"shop-w": "deny", "blog-w": "deny"}
    assert found["evaluated"] == 3 and found["failing"] == 2 and found["denied"] == 2 and found["more"] == 0
    assert {c["check_id"] for f in found["findings"] for c in f["checks"]} == {CHECK}
    assert not Binding.objects.exists(), "a dry run saves nothing"

    audit = post_json(client, f"{API}/bindings/dry-run/", {"policy": baseline().pk, "check_id": CHECK})
    assert {f["outcome"] for f in audit.json()["findings"]} == {"fail"}
    namespaced = enforce_privileged(
        client, scope_kind="namespace", scope_cluster=str(estate["cluster"].pk), scope_namespace="blog"
    )
    assert [f["workload_name"] for f in namespaced.json()["findings"]] == ["blog-w"]

    now = datetime.now(UTC)
    PolicyException.objects.create(
        policy=baseline(),
        check_id=CHECK,
        match_names=["shop-*"],
        reason="legacy",
        owner="shop-team",
        expires_at=now + timedelta(days=3),
        approved_at=now,
    )
    PolicyException.objects.create(  # pending: not in force
        policy=baseline(), check_id=CHECK, match_names=["blog-*"], reason="x", owner="o", expires_at=now + timedelta(1)
    )
    after = enforce_privileged(client).json()
    assert [f["workload_name"] for f in after["findings"]] == ["blog-w"]
    assert after["excepted"] == 1 and after["failing"] == 1


def test_a_dry_run_is_bounded_and_counts_the_rest(estate, admin_persona):
    binding = Binding(policy=baseline(), check_id=CHECK, mode="enforce")
    run = dryrun.dry_run(admin_persona.user, [binding], shown=1)
    assert len(run.findings) == 1 and run.failing == 2 and run.more == 1


def test_a_policy_dry_run_shows_what_enabling_it_would_do(estate, admin_persona):
    client = forced_login(admin_persona.user)
    policy = cel_policy(admin_persona.user, enabled=False)
    nothing = post_json(client, f"{API}/policies/{policy.pk}/dry-run/").json()
    assert nothing["bindings"] == 0 and nothing["findings"] == []
    services.binding_create(policy=policy, mode="warn", by=admin_persona.user)
    run = post_json(client, f"{API}/policies/{policy.pk}/dry-run/").json()
    assert {f["workload_name"] for f in run["findings"]} == {"shop-w", "blog-w"}
    assert {c["message"] for f in run["findings"] for c in f["checks"]} == {"run at least two replicas"}
    assert {f["outcome"] for f in run["findings"]} == {"fail"}


# --- bindings -------------------------------------------------------------------------------------------------------


def test_a_binding_is_created_switched_to_enforce_and_removed(estate, admin_persona):
    client = forced_login(admin_persona.user)
    created = post_json(client, f"{API}/bindings/", {"policy": baseline().pk, "check_id": CHECK})
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["mode"] == "audit" and created.json()["policy_key"] == "pss-baseline"
    evaluation.scan()
    assert set(Result.objects.values_list("mode", flat=True)) == {"audit"}

    switched = patch_json(client, f"{API}/bindings/{pk}/", {"mode": "enforce"})
    assert switched.status_code == 200 and switched.json()["mode"] == "enforce"
    evaluation.scan()
    assert set(Result.objects.filter(check_id=CHECK).values_list("mode", flat=True)) == {"enforce"}
    assert [r["id"] for r in results(client.get(f"{API}/bindings/", {"mode": "enforce"}))] == [pk]
    assert results(client.get(f"{API}/bindings/", {"mode": "audit"})) == []
    assert client.get(f"{API}/bindings/", {"mode": "deny"}).status_code == 400
    assert client.get(f"{API}/policies/{baseline().pk}/").json()["bindings_count"] == 1

    assert client.delete(f"{API}/bindings/{pk}/").status_code == 204
    evaluation.scan()
    assert not Result.objects.exists()
    assert actions("compliance.binding.") == [
        "compliance.binding.create",
        "compliance.binding.update",
        "compliance.binding.delete",
    ]
    update = AuditEvent.objects.get(action="compliance.binding.update")
    assert update.changes["mode"] == ["audit", "enforce"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"mode": "deny"}, "mode"),
        ({"check_id": "bp.replicas"}, "check_id"),
        ({"scope_kind": "namespace", "scope_cluster": "CLUSTER"}, "scope_namespace"),
        ({"scope_kind": "cluster", "scope_cluster": "999999"}, "scope_cluster"),
        ({"scope_kind": "planet"}, "scope_kind"),
        ({"params": {"bp.replicas": {"min_replicas": 3}}}, "params.bp.replicas"),
        ({"params": "x"}, "params"),
    ],
)
def test_a_bad_binding_is_a_400_naming_its_field(estate, admin_persona, values, field):
    body = {"policy": baseline().pk, **values}
    if body.get("scope_cluster") == "CLUSTER":
        body["scope_cluster"] = str(estate["cluster"].pk)
    response = post_json(forced_login(admin_persona.user), f"{API}/bindings/", body)
    assert response.status_code == 400, response.content
    assert field in error_fields(response)
    assert not Binding.objects.exists()


def test_built_in_parameters_are_checked_by_type(estate, admin_persona):
    practice = Policy.objects.get(key="best-practice")
    with pytest.raises(DomainError) as refused:
        services.binding_create(policy=practice, params={"bp.replicas": {"min_replicas": "two"}}, by=admin_persona.user)
    assert refused.value.field == "params.bp.replicas"
    bound = services.binding_create(policy=practice, params={"bp.replicas": {"min_replicas": 4}}, by=admin_persona.user)
    assert bound.params == {"bp.replicas": {"min_replicas": 4}}


# --- attacks --------------------------------------------------------------------------------------------------------


def test_viewers_operators_and_outsiders_cannot_write_policies_or_bindings(
    estate, admin_persona, operator_persona, viewer_persona, outsider_persona
):
    policy = cel_policy(admin_persona.user)
    binding = services.binding_create(policy=baseline(), check_id=CHECK, by=admin_persona.user)
    for persona in (operator_persona, viewer_persona):
        client = forced_login(persona.user)
        body = {"key": "mine", "name": "M", "validations": TWO_REPLICAS}
        assert post_json(client, f"{API}/policies/", body).status_code == 403, persona.username
        assert patch_json(client, f"{API}/policies/{policy.pk}/", {"name": "x"}).status_code == 403
        assert patch_json(client, f"{API}/policies/{baseline().pk}/", {"enabled": False}).status_code == 403
        assert client.delete(f"{API}/policies/{policy.pk}/?confirm=two-replicas").status_code == 403
        assert post_json(client, f"{API}/bindings/", {"policy": baseline().pk}).status_code == 403
        assert patch_json(client, f"{API}/bindings/{binding.pk}/", {"mode": "enforce"}).status_code == 403
        assert client.delete(f"{API}/bindings/{binding.pk}/").status_code == 403
    outsider = forced_login(outsider_persona.user)
    assert results(outsider.get(f"{API}/policies/")) == []
    assert results(outsider.get(f"{API}/bindings/")) == []
    assert outsider.get(f"{API}/policies/{policy.pk}/").status_code == 404
    assert post_json(outsider, f"{API}/bindings/", {"policy": baseline().pk}).status_code == 400
    assert enforce_privileged(outsider).status_code == 400, "the outsider cannot even name the policy"
    assert patch_json(outsider, f"{API}/bindings/{binding.pk}/", {"mode": "enforce"}).status_code == 404
    with pytest.raises(ForbiddenError):
        services.policy_set_enabled(policy=policy, enabled=False, by=viewer_persona.user)
    assert Binding.objects.get(pk=binding.pk).mode == "audit" and Policy.objects.get(pk=policy.pk).enabled
    assert Policy.objects.filter(kind="cel").count() == 1


def test_a_scoped_operator_sees_only_its_scopes_workloads_in_a_dry_run_and_a_test(estate, admin_persona, make_user):
    shop_operator = with_binding(make_user("shop-op"), "operator", estate["cluster"], namespace="shop")
    client = forced_login(shop_operator.user)
    run = enforce_privileged(client).json()
    assert [f["workload_name"] for f in run["findings"]] == ["shop-w"] and run["evaluated"] == 1
    policy = cel_policy(admin_persona.user)
    hidden = post_json(client, f"{API}/policies/{policy.pk}/test/", {"workload": estate["blog-w"].pk})
    assert hidden.status_code == 400 and "workload" in error_fields(hidden)
    with pytest.raises(DomainError):
        dryrun.policy_test(validations=TWO_REPLICAS, workload=estate["blog-w"], by=shop_operator.user)
    seen = post_json(client, f"{API}/policies/{policy.pk}/test/", {"workload": estate["shop-w"].pk})
    assert seen.status_code == 200 and seen.json()["verdicts"][0]["status"] == "fail"
    body = {"policy": baseline().pk, "scope_kind": "namespace", "scope_cluster": str(estate["cluster"].pk)}
    assert post_json(client, f"{API}/bindings/", {**body, "scope_namespace": "shop"}).status_code == 403
    assert post_json(client, f"{API}/bindings/", {**body, "scope_namespace": "blog"}).status_code == 403
    assert not Binding.objects.exists()


def test_a_namespace_admin_binds_only_in_its_namespace(estate, admin_persona, make_user):
    cluster = str(estate["cluster"].pk)
    shop_admin = with_binding(make_user("shop-admin"), "admin", estate["cluster"], namespace="shop")
    client = forced_login(shop_admin.user)
    body = {"policy": baseline().pk, "scope_kind": "namespace", "scope_cluster": cluster, "mode": "enforce"}
    mine = post_json(client, f"{API}/bindings/", {**body, "scope_namespace": "shop"})
    assert mine.status_code == 201, mine.content
    assert post_json(client, f"{API}/bindings/", {**body, "scope_namespace": "blog"}).status_code == 403
    assert post_json(client, f"{API}/bindings/", {"policy": baseline().pk}).status_code == 403  # global
    cluster_wide = {"policy": baseline().pk, "scope_kind": "cluster", "scope_cluster": cluster}
    assert post_json(client, f"{API}/bindings/", cluster_wide).status_code == 403
    moved = patch_json(client, f"{API}/bindings/{mine.json()['id']}/", {**body, "scope_namespace": "blog"})
    assert moved.status_code == 403 and Binding.objects.get(pk=mine.json()["id"]).scope_namespace == "shop"
    global_binding = services.binding_create(policy=baseline(), by=admin_persona.user)
    assert [b["id"] for b in results(client.get(f"{API}/bindings/"))] == [mine.json()["id"]]
    assert client.delete(f"{API}/bindings/{global_binding.pk}/").status_code == 404
    assert (
        post_json(client, f"{API}/policies/", {"key": "k", "name": "K", "validations": TWO_REPLICAS}).status_code == 403
    )
    assert Binding.objects.count() == 2


def test_a_write_reaches_the_admission_snapshot_and_rescans_after_commit(
    estate, admin_persona, django_capture_on_commit_callbacks
):
    from apps.compliance import cache

    cache.rebuild()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        binding = services.binding_create(policy=baseline(), check_id=CHECK, mode="enforce", by=admin_persona.user)
    names = {getattr(c, "__qualname__", "") for c in callbacks}
    assert {"ProcessSnapshot._publish", "_changed.<locals>.<lambda>"} <= names, "the snapshot's rebuild and the scan"
    assert [r.binding_id for r in cache.current().rules] == [binding.pk]
    with django_capture_on_commit_callbacks(execute=True):
        services.binding_update(binding=binding, mode="audit", by=admin_persona.user)
    assert cache.current().rules == (), "audit bindings are not admission's"
