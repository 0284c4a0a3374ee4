"""The scaling page in a real browser (Chromium via Playwright) against a real ICC server.

Path of a live decision: the test's evaluation (real apiserver read, pushed signals) writes the Decision row ->
after-commit publish (Redis channel layer) -> the server's websocket consumer renders the summary out of band and
a trigger that re-fetches the timeline -> htmx swaps them in, without a reload. The replay draws its uPlot chart.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.browser import chromium_page, log_in_to, record_frames, wait_for_frame
from tests.support.clusters import deployed
from tests.support.components import ARTIFACTS
from tests.support.kube import KubeCluster
from tests.support.personas import Persona
from tests.support.server import RunningServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(45 * 60), pytest.mark.django_db(transaction=True)]

LIVE_BOUND_SECONDS = 10  # from the Decision's commit to its row and the new desired count on the open page
T = TypeVar("T")


def off_loop(work: Callable[[], T]) -> T:
    """Run database work in another thread (Playwright's sync API runs an event loop in this one, where Django
    refuses synchronous ORM calls)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result(timeout=60)


@pytest.fixture
def shop(kube_apiserver: KubeCluster, admin_persona: Persona) -> Iterator[dict[str, Any]]:
    """Application ``shop`` (Deployment ``web``, 2 ready replicas), registered and synced, with a recommend policy."""
    from apps.scaler import services as scaler_services

    namespace = f"t-sclive-{uuid.uuid4().hex[:8]}"
    with deployed(kube_apiserver, f"sclive-{namespace[-8:]}", shop=(namespace, "web", 2)) as world:
        app = world.application("shop")
        policy = scaler_services.policy_create(
            application=app,
            metrics=[{"name": "cpu", "target": 0.7}],
            mode="recommend",
            min_replicas=1,
            max_replicas=10,
        )
        yield {"app": app, "policy": policy}


def _decide(app: Any, policy: Any, value: float) -> Any:
    from django.db import connection

    from apps.clusters.models import Pod
    from apps.scaler import evaluation, services

    try:
        pods = list(Pod.objects.filter(application=app, deleting=False).values_list("name", flat=True))
        services.record_signals(application=app, metric="cpu", values=[{"pod": p, "value": value} for p in pods])
        return evaluation.evaluate(policy.pk, "manual")
    finally:
        connection.close()


@pytest.fixture
def page(icc_server: RunningServer, shop: dict[str, Any]) -> Iterator[Any]:
    with chromium_page(height=900) as new_page:
        yield new_page


def test_a_new_decision_appears_live_within_10s_and_the_replay_draws_its_chart(
    icc_server: RunningServer, admin_persona: Persona, shop: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    """A Decision written through the evaluation shows on the open scaling page (timeline row, desired
    replicas) within LIVE_BOUND_SECONDS, without a reload; then a spike replay draws a uPlot canvas and the
    comparison table for the three policies."""
    from playwright.sync_api import expect

    app, policy = shop["app"], shop["policy"]
    frames = record_frames(page)
    try:
        log_in_to(page, icc_server.url, f"/scaler/applications/{app.pk}/", admin_persona)
        expect(page.locator("h1")).to_have_text("Scaling: shop")
        expect(page.locator("#scaling-decisions")).to_contain_text("No decisions yet")
        expect(page.locator("#metrics-unavailable, [data-chart]").first).to_be_visible()  # the lazy panel loaded
        wait_for_frame(page, frames, 'id="scaling-summary"')
        page.evaluate("window.__iccSamePage = true")

        decision = off_loop(lambda: _decide(app, policy, 1.4))  # 2 pods at twice the target: 4 wanted
        committed = time.monotonic()
        assert decision is not None and decision.desired_replicas == 4
        row = page.locator(f"#decision-{decision.pk}")
        expect(row).to_be_visible(timeout=LIVE_BOUND_SECONDS * 1000)
        expect(page.locator('[data-summary-policy="default"] [data-desired]')).to_have_text(
            "4", timeout=LIVE_BOUND_SECONDS * 1000
        )
        elapsed = time.monotonic() - committed
        expect(row.locator("[data-change]")).to_have_text("2 → 4")
        expect(row.locator("[data-outcome]")).to_have_attribute("data-outcome", "recommended")
        assert page.evaluate("window.__iccSamePage") is True, "the page was reloaded"
        print(f"\nscaling page: decision shown {elapsed:.2f}s after its commit", file=sys.__stderr__)

        page.select_option("#replay-form select[name=trace]", "spike")
        page.click("#replay-submit")
        expect(page.locator("#replay-table tr[data-policy]")).to_have_count(3)
        expect(page.locator("#replay-chart canvas")).to_have_count(1)
        box = page.locator("#replay-chart canvas").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, box
        expect(page.locator("#replay-chart .u-legend")).to_contain_text("HPA default")
        assert page.evaluate("window.__iccSamePage") is True, "the replay reloaded the page"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "scaling-application.png"), full_page=True)

        page.goto(f"{icc_server.url}/scaler/")
        expect(page.locator(f"#policy-row-{policy.pk} [data-replicas]")).to_have_text("2 → 4")
        page.screenshot(path=str(ARTIFACTS / "scaling-fleet.png"), full_page=True)
    except Exception:
        print(icc_server.log()[-5000:], file=sys.stderr)
        raise
