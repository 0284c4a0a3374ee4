"""The policy pages through the client with the personas (real PostgreSQL): the library with the built-ins' checks,
a policy's page with its bindings and dry run, the CEL editor (compile errors at their position, a test against a
workload that saves nothing), enabling after the dry run was shown, switching a binding to enforce after its dry
run, deleting with the key typed; and who may do none of it."""

from __future__ import annotations

import pytest

from apps.clusters.models import Workload
from apps.compliance.checks import check_get
from apps.compliance.models import Binding, Policy
from apps.compliance.services import policies as services
from tests.support.clients import forced_login, html, with_binding
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

PAGE = "/compliance/policies/"
CHECK = "pss.baseline.privileged"
PRIVILEGED = {
    "metadata": {"labels": {"app": "x"}},
    "spec": {"containers": [{"name": "app", "image": "registry.local/x:1.0", "securityContext": {"privileged": True}}]},
}
TWO_REPLICAS = '- expression: "object.spec.replicas >= 2"\n  message: "run at least two replicas"\n'


@pytest.fixture
def estate():
    cluster = cluster_row("prod")
    application_row(cluster, "shop", "shop", [])
    application_row(cluster, "blog", "blog", [])
    Workload.objects.update(pod_template=PRIVILEGED, desired_replicas=1)
    return {"cluster": cluster, **{w.name: w for w in Workload.objects.all()}}


def baseline() -> Policy:
    return Policy.objects.get(key="pss-baseline")


def editor(**values):
    form = {"key": "two-replicas", "name": "Two replicas", "severity": "high", "validations": TWO_REPLICAS}
    form.update(values)
    return form


def test_the_library_lists_the_built_ins_with_their_checks_and_the_custom_policies(
    estate, admin_persona, viewer_persona, outsider_persona
):
    services.policy_create(key="custom-one", name="Custom", validations=[{"expression": "true"}], by=admin_persona.user)
    page = html(forced_login(viewer_persona.user).get(PAGE))
    for key in ("pss-baseline", "pss-restricted", "best-practice", "custom-one"):
        assert f'data-policy="{key}"' in page, key
    assert f'data-check="{CHECK}"' in page and check_get(CHECK).remediation in page
    assert 'data-check="custom-one.validations[0]"' in page
    assert 'id="policy-new"' not in page, "a viewer is not offered the editor"
    assert 'id="policy-new"' in html(forced_login(admin_persona.user).get(PAGE))
    assert 'data-policy="' not in html(forced_login(outsider_persona.user).get(PAGE))
    assert 'id="compliance-policies-link"' in html(forced_login(viewer_persona.user).get("/compliance/"))


def test_a_policy_page_shows_its_bindings_and_a_dry_run(estate, admin_persona, viewer_persona):
    binding = services.binding_create(policy=baseline(), check_id=CHECK, by=admin_persona.user)
    client = forced_login(viewer_persona.user)
    page = html(client.get(f"{PAGE}{baseline().pk}/"))
    assert f'data-binding="{binding.pk}"' in page and 'id="policy-disable"' not in page
    dry = client.post(f"{PAGE}{baseline().pk}/dry-run/")
    assert dry.status_code == 200
    body = html(dry)
    assert 'data-dry-workload="shop-w" data-outcome="fail"' in body and 'data-dry-workload="blog-w"' in body
    assert Binding.objects.count() == 1


def test_the_editor_shows_a_compile_error_at_its_position_and_stores_nothing(estate, admin_persona):
    client = forced_login(admin_persona.user)
    broken = '- expression: "true"\n- expression: "object.spec.replicas >= "\n'
    response = client.post(f"{PAGE}new/", editor(validations=broken, action="save"))
    assert response.status_code == 400
    page = html(response)
    assert 'data-error-for="validations"' in page and "validations[1].expression (line 1, column" in page
    assert "object.spec.replicas &gt;= " in page, "the typed text is kept"
    bad_yaml = client.post(f"{PAGE}new/", editor(validations="- [unclosed", action="save"))
    assert bad_yaml.status_code == 400 and 'data-error-for="validations"' in html(bad_yaml)
    assert not Policy.objects.filter(kind="cel").exists()


def test_the_editor_tests_against_a_workload_without_saving(estate, admin_persona, viewer_persona):
    client = forced_login(admin_persona.user)
    tested = client.post(f"{PAGE}new/", editor(action="test", test_workload=estate["shop-w"].pk))
    assert tested.status_code == 200
    assert 'data-verdict="fail"' in html(tested) and "run at least two replicas" in html(tested)
    runtime = editor(validations="- expression: \"object.spec.template.spec.nodeSelector.zone == 'a'\"")
    errored = client.post(f"{PAGE}new/", {**runtime, "action": "test", "test_workload": estate["shop-w"].pk})
    assert 'data-verdict="error"' in html(errored)
    assert not Policy.objects.filter(kind="cel").exists()

    policy = services.policy_create(
        key="two-replicas", name="HA", validations=[{"expression": "true"}], by=admin_persona.user
    )
    viewer = forced_login(viewer_persona.user)
    as_viewer = viewer.post(f"{PAGE}{policy.pk}/", editor(action="test", test_workload=estate["blog-w"].pk))
    assert as_viewer.status_code == 200 and 'data-verdict="fail"' in html(as_viewer)
    assert viewer.post(f"{PAGE}{policy.pk}/", editor(action="save")).status_code == 403
    assert Policy.objects.get(pk=policy.pk).version == 1


def test_a_policy_is_created_and_saved_as_a_new_version(estate, admin_persona):
    client = forced_login(admin_persona.user)
    created = client.post(f"{PAGE}new/", editor(action="save", enabled="on"))
    assert created.status_code == 302
    policy = Policy.objects.get(key="two-replicas")
    assert created["Location"] == f"{PAGE}{policy.pk}/"
    assert policy.validations == [{"expression": "object.spec.replicas >= 2", "message": "run at least two replicas"}]
    saved = client.post(f"{PAGE}{policy.pk}/", editor(action="save", name="Highly available", match_kinds="Deployment"))
    assert saved.status_code == 302
    policy.refresh_from_db()
    assert (policy.version, policy.name, policy.match) == (2, "Highly available", {"kinds": ["Deployment"]})
    assert client.post(f"{PAGE}{baseline().pk}/", editor(action="save")).status_code == 409


def test_enabling_a_policy_shows_its_dry_run_before_it_takes_effect(estate, admin_persona):
    policy = services.policy_create(
        key="ha",
        name="HA",
        validations=[{"expression": "object.spec.replicas >= 2"}],
        enabled=False,
        by=admin_persona.user,
    )
    services.binding_create(policy=policy, mode="enforce", by=admin_persona.user)
    client = forced_login(admin_persona.user)
    first = client.post(f"{PAGE}{policy.pk}/enable/")
    assert first.status_code == 200
    page = html(first)
    assert 'id="policy-enable-confirm"' in page and 'data-dry-workload="shop-w" data-outcome="deny"' in page
    assert not Policy.objects.get(pk=policy.pk).enabled
    confirmed = client.post(f"{PAGE}{policy.pk}/enable/", {"confirmed": "on", "reason": "reviewed"})
    assert confirmed.status_code == 302 and Policy.objects.get(pk=policy.pk).enabled
    assert client.post(f"{PAGE}{policy.pk}/disable/").status_code == 302
    assert not Policy.objects.get(pk=policy.pk).enabled


def binding_form(**values):
    form = {"check_id": CHECK, "scope_kind": "global", "mode": "audit", "params": "", "enabled": "on"}
    form.update(values)
    return form


def test_switching_a_binding_to_enforce_shows_its_dry_run_and_needs_confirmation(estate, admin_persona):
    client = forced_login(admin_persona.user)
    created = client.post(f"{PAGE}{baseline().pk}/bindings/new/", binding_form())
    assert created.status_code == 302, html(created)
    binding = Binding.objects.get()
    switch = client.post(f"/compliance/bindings/{binding.pk}/", binding_form(mode="enforce"))
    assert switch.status_code == 200
    page = html(switch)
    assert 'id="binding-enforce-confirm"' in page and 'data-dry-workload="blog-w" data-outcome="deny"' in page
    assert Binding.objects.get().mode == "audit", "nothing changes before the confirmation"
    confirmed = client.post(f"/compliance/bindings/{binding.pk}/", binding_form(mode="enforce", confirmed="on"))
    assert confirmed.status_code == 302 and Binding.objects.get().mode == "enforce"

    new_enforce = client.post(f"{PAGE}{baseline().pk}/bindings/new/", binding_form(mode="enforce"))
    assert new_enforce.status_code == 200 and Binding.objects.count() == 1

    assert client.post(f"/compliance/bindings/{binding.pk}/delete/").status_code == 400
    assert client.post(f"/compliance/bindings/{binding.pk}/delete/", {"confirm": "on"}).status_code == 302
    assert not Binding.objects.exists()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"params": "- not a mapping"}, "params"),
        ({"params": '{"bp.replicas": {"min_replicas": 3}}'}, "params"),
        ({"scope_kind": "namespace"}, "scope_cluster"),
        ({"mode": "deny"}, "mode"),
    ],
)
def test_a_bad_binding_form_shows_the_error_on_its_field(estate, admin_persona, values, field):
    response = forced_login(admin_persona.user).post(f"{PAGE}{baseline().pk}/bindings/new/", binding_form(**values))
    assert response.status_code == 400
    assert f'data-error-for="{field}"' in html(response)
    assert not Binding.objects.exists()


def test_deleting_a_policy_needs_its_key_typed(estate, admin_persona):
    policy = services.policy_create(key="gone", name="G", validations=[{"expression": "true"}], by=admin_persona.user)
    client = forced_login(admin_persona.user)
    wrong = client.post(f"{PAGE}{policy.pk}/delete/", {"confirm": "nope"})
    assert wrong.status_code == 400 and 'data-error-for="confirm"' in html(wrong)
    assert client.post(f"{PAGE}{policy.pk}/delete/", {"confirm": "gone"}).status_code == 302
    assert not Policy.objects.filter(key="gone").exists()


def test_who_may_not_configure_is_refused_and_outsiders_see_nothing(
    estate, admin_persona, viewer_persona, operator_persona, outsider_persona, make_user
):
    policy = services.policy_create(key="kept", name="K", validations=[{"expression": "true"}], by=admin_persona.user)
    binding = services.binding_create(policy=baseline(), by=admin_persona.user)
    for persona in (viewer_persona, operator_persona):
        client = forced_login(persona.user)
        assert client.get(f"{PAGE}new/").status_code == 403
        assert client.post(f"{PAGE}{policy.pk}/delete/", {"confirm": "kept"}).status_code == 403
        assert client.post(f"{PAGE}{baseline().pk}/disable/").status_code == 403
        assert client.post(f"{PAGE}{baseline().pk}/bindings/new/", binding_form()).status_code == 403
        assert client.post(f"/compliance/bindings/{binding.pk}/", binding_form(mode="warn")).status_code == 403
        assert client.post(f"/compliance/bindings/{binding.pk}/delete/", {"confirm": "on"}).status_code == 403
    outsider = forced_login(outsider_persona.user)
    assert outsider.get(f"{PAGE}{policy.pk}/").status_code == 404
    assert outsider.get(f"/compliance/bindings/{binding.pk}/").status_code == 404

    blog_admin = with_binding(make_user("blog-admin"), "admin", estate["cluster"], namespace="blog")
    scoped = forced_login(blog_admin.user)
    elsewhere = binding_form(scope_kind="namespace", scope_cluster=str(estate["cluster"].pk), scope_namespace="shop")
    assert scoped.post(f"{PAGE}{baseline().pk}/bindings/new/", elsewhere).status_code == 403
    own = {**elsewhere, "scope_namespace": "blog", "mode": "enforce"}
    confirm = scoped.post(f"{PAGE}{baseline().pk}/bindings/new/", own)
    assert 'data-dry-workload="blog-w"' in html(confirm) and 'data-dry-workload="shop-w"' not in html(confirm)
    assert scoped.post(f"{PAGE}{baseline().pk}/bindings/new/", {**own, "confirmed": "on"}).status_code == 302
    assert Policy.objects.get(pk=policy.pk).enabled and Binding.objects.count() == 2


def test_the_admin_shows_compliance_rows_read_only(estate, admin_persona, make_user):
    binding = services.binding_create(policy=baseline(), by=admin_persona.user)
    staff = forced_login(make_user("staff-admin", staff=True, superuser=True).user)
    for path in ("policy", "binding", "policyexception", "result", "admissionwebhook"):
        assert staff.get(f"/admin/compliance/{path}/").status_code == 200, path
    assert staff.get("/admin/compliance/policy/add/").status_code == 403
    change = staff.post(f"/admin/compliance/binding/{binding.pk}/change/", {"mode": "enforce"})
    assert change.status_code == 403 and Binding.objects.get().mode == "audit"
