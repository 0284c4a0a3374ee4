"""The application page in a real browser (Chromium via Playwright) against a real ICC server whose embedded
watcher follows a real kube-apiserver: a scale made through the Kubernetes API reaches the pod grid live.

Path: kube-apiserver -> the server's watcher -> PostgreSQL -> after-commit publish (Redis channel layer) ->
the server's websocket consumer re-renders the pod grid for this viewer -> htmx swaps it in (no reload).
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import chromium_page, log_in, log_in_to, record_frames, wait_for_frame
from tests.support.clusters import deployed
from tests.support.components import ARTIFACTS
from tests.support.kube import KubeCluster
from tests.support.personas import Persona
from tests.support.server import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]

LIVE_BOUND_SECONDS = 30  # from the scale call to the last new tile turning green, pods scheduled and made ready


@pytest.fixture
def shop(kube_apiserver: KubeCluster, admin_persona: Persona) -> Iterator[dict[str, Any]]:
    """A namespace with Deployment ``web`` (1 replica, part of application ``shop``), registered and synced."""
    namespace = f"t-live-{uuid.uuid4().hex[:8]}"
    with deployed(kube_apiserver, f"live-{namespace[-8:]}", shop=(namespace, "web", 1)) as world:
        yield {"namespace": namespace, "app_id": world.application("shop").pk, "apps_api": world.apps}


@pytest.fixture
def page(watching_server: RunningServer, shop: dict[str, Any]) -> Iterator[Any]:
    """A Chromium page, started after the database work (Playwright's loop forbids the ORM in this thread)."""
    with chromium_page(height=900) as new_page:
        yield new_page


def test_the_pod_grid_follows_a_scale_made_in_the_cluster_within_30s(
    watching_server: RunningServer, admin_persona: Persona, shop: dict[str, Any], page: Any
) -> None:
    """Scale 1 -> 3 through the real API: within LIVE_BOUND_SECONDS the open page shows three green tiles and
    3 ready replicas, without a reload; then 3 -> 1 and the extra tiles go away."""
    from playwright.sync_api import expect

    frames = record_frames(page)
    url = f"{watching_server.url}/clusters/applications/{shop['app_id']}/"
    try:
        log_in_to(page, watching_server.url, f"/clusters/applications/{shop['app_id']}/", admin_persona)
        expect(page.locator("h1")).to_have_text("shop")
        green = page.locator('#pod-grid [data-colour="green"]')
        expect(green).to_have_count(1)
        wait_for_frame(page, frames, 'id="pod-grid"')
        page.evaluate("window.__iccSamePage = true")

        started = time.monotonic()
        shop["apps_api"].patch_namespaced_deployment_scale("web", shop["namespace"], {"spec": {"replicas": 3}})
        expect(green).to_have_count(3, timeout=LIVE_BOUND_SECONDS * 1000)
        elapsed = time.monotonic() - started
        expect(page.locator('#application-workloads [data-workload="web"] [data-ready]')).to_have_text("3")
        expect(page.locator("#pods-ready")).to_have_text("3 / 3")
        assert page.evaluate("window.__iccSamePage") is True, "the page was reloaded"
        print(f"\npod grid: 1 -> 3 green tiles {elapsed:.2f}s after the scale call", file=sys.__stderr__)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "application-pod-grid-live.png"), full_page=True)

        shop["apps_api"].patch_namespaced_deployment_scale("web", shop["namespace"], {"spec": {"replicas": 1}})
        expect(page.locator("#pod-grid [data-pod]")).to_have_count(1, timeout=LIVE_BOUND_SECONDS * 1000)
        expect(page.locator("#pods-ready")).to_have_text("1 / 1")
        assert page.evaluate("window.__iccSamePage") is True, "the page was reloaded"

        # The applications list (filtered to this namespace) follows the pods too.
        page.goto(f"{watching_server.url}/clusters/applications/?namespace={shop['namespace']}")
        pods_cell = page.locator(f"#application-row-{shop['app_id']} [data-pods]")
        expect(pods_cell).to_have_text("1 / 1")
        expect(page.locator("#ws-status")).to_be_empty()  # subscribed without refusal
        page.wait_for_timeout(500)  # the snapshot's re-fetch settles
        shop["apps_api"].patch_namespaced_deployment_scale("web", shop["namespace"], {"spec": {"replicas": 2}})
        started = time.monotonic()
        expect(pods_cell).to_have_text("2 / 2", timeout=LIVE_BOUND_SECONDS * 1000)
        elapsed = time.monotonic() - started
        print(f"applications list: 1 -> 2 pods {elapsed:.2f}s after the scale call", file=sys.__stderr__)

        # A pod tile leads to its logs; "Follow live" streams new lines over /ws/pods/<id>/logs/.
        page.goto(url)
        page.locator("#pod-grid a[data-pod]").first.click()
        expect(page.locator("h1")).to_contain_text("Logs of web-")
        page.click("#follow-logs")
        expect(page.locator("#follow-status")).to_have_text("following live")
        expect(page.locator("#log-lines")).to_contain_text("/web tick 3", timeout=15_000)
        page.click("#follow-logs")
        expect(page.locator("#follow-status")).to_have_text("stopped")
    except Exception:
        print(watching_server.log()[-5000:], file=sys.stderr)
        raise


def test_the_cluster_page_keeps_its_workload_filter_while_updating_live_within_30s(
    watching_server: RunningServer, admin_persona: Persona, shop: dict[str, Any], page: Any
) -> None:
    """The workloads table of a cluster page, filtered to one namespace, re-fetches itself with that filter
    when the watcher reports a change: the scaled Deployment's ready count updates within LIVE_BOUND_SECONDS,
    other namespaces stay filtered out, and the page is not reloaded."""
    from playwright.sync_api import expect

    namespace = shop["namespace"]
    page.goto(f"{watching_server.url}/accounts/login/?next=/clusters/")
    log_in(page, admin_persona.username, admin_persona.password)
    expect(page.locator("h1")).to_have_text("Clusters")
    row = page.locator("#clusters-table tbody tr").filter(has_text=f"live-{namespace[-8:]}")
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "connected", timeout=20_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "clusters-list.png"), full_page=True)

    row.locator("a").first.click()
    expect(page.locator("#cluster-nodes [data-node]").first).to_be_visible()
    page.select_option("#workload-filters select[name=namespace]", namespace)
    page.click("#workload-filters button[type=submit]")
    expect(page).to_have_url(re.compile(f"namespace={re.escape(namespace)}"))
    rows = page.locator("#cluster-workloads tbody tr[data-workload]")
    expect(rows).to_have_count(1)
    ready = page.locator(f'#cluster-workloads [data-workload="{namespace}/web"] [data-ready]')
    expect(ready).to_have_text("1 / 1")
    page.evaluate("window.__iccSamePage = true")

    shop["apps_api"].patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 2}})
    expect(ready).to_have_text("2 / 2", timeout=LIVE_BOUND_SECONDS * 1000)
    expect(rows).to_have_count(1)  # still filtered to the one namespace
    assert page.evaluate("window.__iccSamePage") is True, "the page was reloaded"
    page.screenshot(path=str(ARTIFACTS / "cluster-detail-live.png"), full_page=True)

    page.goto(f"{watching_server.url}/clusters/new/")
    expect(page.locator("h1")).to_have_text("Register a cluster")
    page.check("input[name=auth_mode][value=kubeconfig]")
    expect(page.locator('[data-mode="token"]')).to_be_hidden()
    page.fill("#id_kubeconfig_text", _two_context_kubeconfig())
    page.locator("#id_kubeconfig_text").blur()  # "change" fires: the chooser lists the contexts
    expect(page.locator('#context-chooser input[name=context][value="prod"]')).to_be_checked()
    expect(page.locator('#context-chooser input[name=context][value="staging"]')).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "cluster-register.png"), full_page=True)


def _two_context_kubeconfig() -> str:
    import json

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "prod",
            "clusters": [
                {"name": "k", "cluster": {"server": "https://k.example:6443", "insecure-skip-tls-verify": True}}
            ],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": n, "context": {"cluster": "k", "user": "u"}} for n in ("staging", "prod")],
        }
    )
