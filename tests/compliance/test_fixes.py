"""Fixes: a failing result's JSON Patch, shown as a ``kubectl patch`` command quoted for a shell and applied to the
workload through the gateway. Against the real kube-apiserver: the Deployment is patched, the watcher sees the
change and a real worker re-evaluates it until the result passes; a stale observation is refused (409) and nothing
is patched; viewers, outsiders and operators of another namespace cannot apply. Without a cluster: a result with
no fix is a 400 naming ``fix``, a passing one a 409, and the command survives hostile values."""

from __future__ import annotations

import json
import shlex
import uuid

import pytest
from kubernetes import client as k8s

from apps.audit.models import AuditEvent
from apps.clusters.models import Workload
from apps.compliance import evaluation
from apps.compliance.models import Binding, Policy, Result
from apps.compliance.services import fixes
from tests.support.clients import error_fields, forced_login, html, post_json, with_binding
from tests.support.clusters import deployment_settled, make_deployment, ready_pods, register, synced
from tests.support.components import free_port, wait_for
from tests.support.rows import application_row, cluster_row
from tests.support.server import start_celery_worker, stop_process

AUTOMOUNT = "bp.automount-service-account-token"
FIX = [{"op": "add", "path": "/spec/template/spec/automountServiceAccountToken", "value": False}]


def fix_url(result: Result) -> str:
    return f"/api/v1/compliance/results/{result.pk}/fix/"


def bind(check_id: str = "") -> None:
    Binding.objects.create(policy=Policy.objects.get(key="best-practice"), check_id=check_id)


# --- without a cluster ------------------------------------------------------------------------------------------


def test_the_kubectl_command_is_quoted_for_a_shell():
    hostile = [{"op": "add", "path": "/metadata/annotations/note", "value": 'it\'s $(rm -rf /) `x` "q"'}]
    workload = Workload(kind="Deployment", name="web", namespace="shop-ns")
    command = fixes.kubectl_patch(Result(workload=workload, check_id="c", fix=hostile))
    words = shlex.split(command)
    assert words[:8] == ["kubectl", "patch", "deployment", "web", "-n", "shop-ns", "--type=json", "-p"]
    assert json.loads(words[8]) == hostile and len(words) == 9
    plain = fixes.kubectl_patch(Result(workload=workload, check_id="c", fix=FIX))
    assert plain == (
        "kubectl patch deployment web -n shop-ns --type=json -p "
        """'[{"op":"add","path":"/spec/template/spec/automountServiceAccountToken","value":false}]'"""
    )
    assert fixes.kubectl_patch(Result(workload=workload, check_id="c", fix=None)) == ""
    assert fixes.kubectl_patch(Result(workload=workload, check_id="c", fix=[{"op": "exec", "path": "/"}])) == ""


@pytest.fixture
def stored():
    """A Deployment row (no cluster behind it) evaluated against the best practices: automount fails with a fix,
    the liveness probe fails without one, the pinned tag passes."""
    cluster = cluster_row("nowhere")
    app = application_row(cluster, "shop", "shop", [])
    spec = {"containers": [{"name": "app", "image": "registry.local/shop:1.0"}]}
    Workload.objects.filter(application=app).update(pod_template={"metadata": {"labels": {}}, "spec": spec})
    bind()
    evaluation.scan()
    return {r.check_id: r for r in Result.objects.filter(workload__application=app)}


@pytest.mark.django_db
def test_a_result_without_a_fix_is_a_400_and_a_passing_one_a_409(stored, operator_persona):
    operator = forced_login(operator_persona.user)
    assert stored["bp.liveness-probe"].status == "fail" and stored["bp.liveness-probe"].fix is None
    no_fix = post_json(operator, fix_url(stored["bp.liveness-probe"]), {"reason": "try"})
    assert no_fix.status_code == 400, no_fix.content
    assert "fix" in error_fields(no_fix)
    assert stored["bp.image-tag"].status == "pass"
    passing = post_json(operator, fix_url(stored["bp.image-tag"]), {"reason": "try"})
    assert passing.status_code == 409, passing.content
    assert not AuditEvent.objects.filter(action="compliance.result.fix").exists()


@pytest.mark.django_db
def test_a_fix_is_judged_again_on_the_latest_observation_before_it_is_sent(stored, operator_persona):
    result = stored[AUTOMOUNT]
    assert result.status == "fail" and result.fix == FIX
    workload = Workload.objects.get(pk=result.workload_id)
    workload.pod_template["spec"]["automountServiceAccountToken"] = False  # observed, not yet re-evaluated
    Workload.objects.filter(pk=workload.pk).update(pod_template=workload.pod_template)
    response = post_json(forced_login(operator_persona.user), fix_url(result), {"reason": "harden"})
    assert response.status_code == 409, response.content  # nothing sent: the cluster behind it does not exist
    assert Result.objects.get(pk=result.pk).status == "pass"


@pytest.mark.django_db
def test_the_result_page_shows_the_check_the_patch_and_the_command(stored, operator_persona, viewer_persona):
    result = stored[AUTOMOUNT]
    assert result.status == "fail" and result.fix == FIX
    page = html(forced_login(operator_persona.user).get(f"/compliance/results/{result.pk}/"))
    assert "ServiceAccount token not mounted" in page and "automountServiceAccountToken: false" in page
    assert "/spec/template/spec/automountServiceAccountToken" in page
    assert "kubectl patch deployment shop-w -n shop --type=json -p" in page
    assert 'id="result-fix-apply"' in page
    seen = html(forced_login(viewer_persona.user).get(f"/compliance/results/{result.pk}/"))
    assert "kubectl patch deployment shop-w" in seen and 'id="result-fix-apply"' not in seen
    shown = forced_login(viewer_persona.user).get(fix_url(result)).json()
    assert shown["fix"] == FIX and shown["kubectl"] == fixes.kubectl_patch(result)
    probe = html(forced_login(operator_persona.user).get(f"/compliance/results/{stored['bp.liveness-probe'].pk}/"))
    assert 'id="result-no-fix"' in probe and 'id="result-fix-apply"' not in probe


# --- against the real control plane -----------------------------------------------------------------------------


@pytest.fixture
def analysis_worker(tmp_path):
    """A real Celery worker on the ``analysis`` queue: it runs the re-evaluation the watcher asks for."""
    process = start_celery_worker(
        tmp_path / "worker.log", queue="analysis", hostname=f"fixes-{free_port()}", WORKER_METRICS_PORT="0"
    )
    yield tmp_path / "worker.log"
    stop_process(process)


def live_automount(apps: k8s.AppsV1Api, namespace: str, name: str) -> bool | None:
    spec = apps.read_namespaced_deployment(name, namespace).spec.template.spec
    value: bool | None = spec.automount_service_account_token
    return value


def observed_is_current(apps: k8s.AppsV1Api, workload: Workload) -> bool:
    workload.refresh_from_db()
    live = apps.read_namespaced_deployment(workload.name, workload.namespace).metadata.resource_version
    return bool(workload.resource_version) and workload.resource_version == live


@pytest.mark.timeout(45 * 60)
@pytest.mark.django_db(transaction=True)
def test_a_fix_is_applied_through_the_apiserver_and_the_result_passes_after_re_evaluation(
    kube, k8s_api, namespace, watching, analysis_worker, operator_persona, viewer_persona, outsider_persona, make_user
):
    name = f"web-{uuid.uuid4().hex[:6]}"
    make_deployment(k8s_api, namespace, name, part_of="shop")
    apps = k8s.AppsV1Api(k8s_api)
    ready_pods(k8s_api, namespace, name, 1)
    wait_for("the deployment to settle", lambda: deployment_settled(apps, namespace, name), timeout=60)
    cluster = synced(register(kube))
    watching(cluster)
    bind(AUTOMOUNT)
    evaluation.scan()
    workload = Workload.objects.get(cluster=cluster, namespace=namespace, name=name)
    result = Result.objects.get(workload=workload, check_id=AUTOMOUNT)
    assert result.status == "fail" and result.fix == FIX
    assert fixes.kubectl_patch(result) == (
        f"kubectl patch deployment {name} -n {namespace} --type=json -p '{json.dumps(FIX, separators=(',', ':'))}'"
    )

    # The attacks: nobody without the operator role on this workload patches it.
    assert post_json(forced_login(viewer_persona.user), fix_url(result), {"reason": "x"}).status_code == 403
    assert post_json(forced_login(outsider_persona.user), fix_url(result), {"reason": "x"}).status_code == 404
    elsewhere = with_binding(make_user("other-ns-operator"), "operator", cluster, namespace="elsewhere")
    assert post_json(forced_login(elsewhere.user), fix_url(result), {"reason": "x"}).status_code == 404
    viewer_form = forced_login(viewer_persona.user).post(f"/compliance/results/{result.pk}/fix/", {"reason": "x"})
    assert viewer_form.status_code == 403
    operator = forced_login(operator_persona.user)
    no_reason = post_json(operator, fix_url(result), {"reason": " "})
    assert no_reason.status_code == 400 and "reason" in error_fields(no_reason)
    assert live_automount(apps, namespace, name) is None

    # A stale observation (the workload changed since ICC saw it) is refused by the API server's precondition.
    wait_for("ICC to observe the settled deployment", lambda: observed_is_current(apps, workload), timeout=30)
    current = workload.resource_version
    Workload.objects.filter(pk=workload.pk).update(resource_version=str(int(current) - 1))
    stale = operator.post(f"/compliance/results/{result.pk}/fix/", {"reason": "harden", "confirm": "on"})
    assert stale.status_code == 409, html(stale)
    assert "changed since ICC observed it" in html(stale)
    assert live_automount(apps, namespace, name) is None
    Workload.objects.filter(pk=workload.pk).update(resource_version=current)
    unconfirmed = operator.post(f"/compliance/results/{result.pk}/fix/", {"reason": "harden"})
    assert unconfirmed.status_code == 400 and 'data-error-for="confirm"' in html(unconfirmed)

    applied = post_json(operator, fix_url(result), {"reason": "nothing here calls the API"})
    assert applied.status_code == 200, applied.content
    assert applied.json()["resource_version"] and applied.json()["resource_version"] != current
    assert live_automount(apps, namespace, name) is False

    def passes() -> bool:
        return Result.objects.get(pk=result.pk).status == "pass"

    wait_for("the watcher and the worker to re-evaluate the workload", passes, timeout=60, interval=0.2)
    page = html(operator.get(f"/compliance/results/{result.pk}/"))
    assert 'data-status="pass"' in page and 'id="result-fix-apply"' not in page

    events = AuditEvent.objects.filter(action="compliance.result.fix").order_by("seq")
    assert [e.outcome for e in events] == ["failure", "success"]
    assert events.last().message == "nothing here calls the API"
    last = events.last()
    assert last.metadata["patch"] == FIX and last.scope_namespace == namespace
    assert last.actor_name == operator_persona.username and last.target_display == str(workload)
