"""Caching recommendations (issue 14 item 5): a stable, often-hit route gets a TTL whose replay estimate matches a
hand count; Set-Cookie, private, no-store, Vary: *, Authorization-dependent and varying routes get none, each with
its reason; a stable but rarely hit route gets validators. Decisions are audited, make configuration versions and
are served to the application's machine identity with an ETag (304 when unchanged); viewers, operators and
outsiders cannot decide; scoped users read only their applications' recommendations. Real PostgreSQL and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.traffic import recommend, recommend_selectors
from apps.traffic.models import CacheConfig, Recommendation, Sample
from apps.traffic.recommend import Request, analyse
from apps.traffic.services.recommendations import (
    recommendation_accept,
    recommendation_reject,
    recommendations_compute,
)
from apps.users.tokens import token_create
from tests.support.clients import bind, forced_login, post_json, results
from tests.support.rows import application_row, cluster_row

WINDOW = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
API = "/api/v1/traffic"


def series(route: str, n: int, every: float, *, body: Any = "A", start: float = 0.0, **headers: Any) -> list[Request]:
    """``n`` GETs of ``route`` every ``every`` seconds; ``body`` is a hash, or a function of the index."""
    return [
        Request(
            at=start + i * every,
            route=route,
            method="GET",
            status=200,
            duration_ms=20.0,
            size=1000,
            body_hash=body(i) if callable(body) else body,
            **headers,
        )
        for i in range(n)
    ]


def one(requests: list[Request], max_ttl: int = 3600) -> recommend.Advice:
    [advice] = analyse(requests, max_ttl=max_ttl, window=WINDOW)
    return advice


# --- the analysis (pure) ------------------------------------------------------------------------------------------


def test_a_stable_often_hit_route_gets_a_ttl_whose_replay_matches_a_hand_count():
    # A request every 10 s for an hour; the body changes once, after 1500 s.
    advice = one(series("/catalog", 360, 10, body=lambda i: "A" if i < 150 else "B"))
    assert (advice.kind, advice.ttl_seconds) == ("ttl", 900)  # 1500 s stable, rounded down to 15 min
    # By hand, a 900 s TTL: misses at 0, 900, 1800 and 2700 s refill the cache; the other 356 are hits, of which the
    # 30 between the change (1500 s) and the refill (1800 s) serve the old body.
    assert advice.estimate["replayed_requests"] == 360
    assert advice.estimate["origin_requests_saved"] == 356
    assert advice.estimate["stale_hits"] == 30
    assert advice.estimate["hit_ratio"] == round(356 / 360, 4)
    assert advice.estimate["latency_saved_ms"] == 356 * 20.0
    assert advice.estimate["window"] == {"start": WINDOW[0].isoformat(), "end": WINDOW[1].isoformat()}
    assert advice.evidence["stability"] == round(358 / 359, 4) and advice.evidence["median_gap_s"] == 10
    assert any("changed once" in r for r in advice.reasons), advice.reasons


def test_the_ttl_never_exceeds_the_cap_nor_what_the_responses_allow():
    capped = one(series("/static", 200, 5), max_ttl=300)
    assert (capped.kind, capped.ttl_seconds) == ("ttl", 300)
    assert any("capped at 5 min" in r for r in capped.reasons)
    stated = one(series("/static", 200, 5, cache_control="max-age=60"), max_ttl=3600)
    assert (stated.kind, stated.ttl_seconds) == ("ttl", 60)
    assert any("at most 1 min" in r for r in stated.reasons), stated.reasons


BLOCKED = [
    ({"set_cookie": True}, "Set-Cookie"),
    ({"cache_control": "private, max-age=600"}, "Cache-Control: private"),
    ({"cache_control": "no-store"}, "Cache-Control: no-store"),
    ({"vary": "*"}, "Vary: *"),
    ({"authorization": True}, "carried Authorization without Cache-Control: public"),
]


@pytest.mark.parametrize(("headers", "says"), BLOCKED, ids=[b[1] for b in BLOCKED])
def test_responses_a_shared_cache_must_not_reuse_get_no_ttl_with_the_reason(headers, says):
    advice = one(series("/me", 200, 5, **headers))
    assert (advice.kind, advice.ttl_seconds) == ("none", 0)
    assert any(says in r and "200 of 200 responses" in r for r in advice.reasons), advice.reasons
    assert advice.estimate["origin_requests_saved"] == 0
    # The same route without that header is cacheable: the header alone decided.
    assert one(series("/me", 200, 5)).kind == "ttl"


def test_one_response_in_many_setting_a_cookie_is_enough():
    requests = series("/home", 200, 5)
    requests[100] = Request(**{**requests[100].__dict__, "set_cookie": True})
    advice = one(requests)
    assert advice.kind == "none"
    assert any("1 of 200 responses set a cookie" in r for r in advice.reasons)


def test_an_authorized_request_answered_public_may_be_cached():
    advice = one(series("/docs", 200, 5, authorization=True, cache_control="public, max-age=600"))
    assert (advice.kind, advice.ttl_seconds) == ("ttl", 600)


def test_a_named_vary_header_still_allows_a_ttl_and_says_what_to_key_on():
    advice = one(series("/docs", 200, 5, vary="Accept-Language"))
    assert advice.kind == "ttl"
    assert any("vary by accept-language" in r for r in advice.reasons), advice.reasons


def test_varying_bodies_get_none():
    advice = one(series("/users/{id}", 200, 5, body=lambda i: f"user-{i % 7}"))
    assert advice.kind == "none"
    assert any("Bodies vary" in r for r in advice.reasons), advice.reasons


def test_too_few_samples_are_not_judged():
    advice = one(series("/rare", 3, 5))
    assert advice.kind == "none"
    assert any("Only 3 requests" in r for r in advice.reasons)


def test_a_stable_but_rarely_hit_route_gets_validators():
    advice = one(series("/report", 12, 7200, etag='"r1"'), max_ttl=3600)  # every 2 h, never changing
    assert advice.kind == "validators"
    assert any("rarely hit" in r for r in advice.reasons), advice.reasons
    assert any("12 of 12 responses carry an ETag" in r for r in advice.reasons), advice.reasons
    assert advice.estimate["origin_requests_saved"] == 0  # revalidation still reaches the origin...
    assert advice.estimate["not_modified"] == 11  # ...but 11 answers would have been 304s without a body
    assert advice.estimate["bytes_saved_by_304"] == 11 * 1000
    without = one(series("/report", 12, 7200), max_ttl=3600)
    assert without.kind == "validators" and any("add one" in r for r in without.reasons)


def test_no_cache_responses_get_validators_not_a_ttl():
    advice = one(series("/feed", 200, 5, cache_control="no-cache", etag='"f"'))
    assert advice.kind == "validators"
    assert any("no-cache" in r for r in advice.reasons)


def test_only_get_and_head_are_analysed():
    posts = [Request(at=i, route="/orders", method="POST", status=201, duration_ms=5, body_hash="x") for i in range(50)]
    advices = analyse(posts + series("/orders", 50, 5), max_ttl=3600, window=WINDOW)
    assert [(a.route, a.method) for a in advices] == [("/orders", "GET")]
    assert advices[0].evidence["skew"] == 0.5  # half of the application's sampled requests


# --- services, API and the machine endpoint (database) -------------------------------------------------------------


@pytest.fixture
def shop(db):
    cluster = cluster_row("prod")
    return {
        "cluster": cluster,
        "shop": application_row(cluster, "web", "shop", []),
        "blog": application_row(cluster, "web", "blog", []),
    }


def sample_rows(application: Any, requests: list[Request], now: datetime) -> None:
    """Sample rows as the flusher writes them, the last request ending at ``now``."""
    end = max(r.at for r in requests)
    Sample.objects.bulk_create(
        Sample(
            application=application,
            **{**r.__dict__, "at": now - timedelta(seconds=end - r.at)},
        )
        for r in requests
    )


@pytest.fixture
def sampled(shop):
    now = datetime.now(UTC)
    sample_rows(shop["shop"], series("/catalog", 360, 10, body=lambda i: "A" if i < 150 else "B"), now)
    sample_rows(shop["shop"], series("/cart", 100, 10, set_cookie=True), now)
    sample_rows(shop["blog"], series("/posts", 100, 10), now)
    recommendations_compute(application=shop["shop"])
    recommendations_compute(application=shop["blog"])
    return shop


def current(application: Any, route: str) -> Recommendation:
    return Recommendation.objects.get(application=application, route=route, state="proposed")


@pytest.mark.django_db
def test_computing_twice_keeps_proposals_and_a_changed_advice_supersedes_the_old_one(sampled, settings):
    catalog = current(sampled["shop"], "/catalog")
    assert (catalog.kind, catalog.ttl_seconds, catalog.estimate["origin_requests_saved"]) == ("ttl", 900, 356)
    assert current(sampled["shop"], "/cart").kind == "none"
    recommendations_compute(application=sampled["shop"])
    assert current(sampled["shop"], "/catalog").pk == catalog.pk  # unchanged advice: same row, refreshed
    settings.TRAFFIC_RECOMMEND_MAX_TTL_SECONDS = 300
    recommendations_compute(application=sampled["shop"])
    catalog.refresh_from_db()
    assert catalog.state == "superseded"
    assert current(sampled["shop"], "/catalog").ttl_seconds == 300


@pytest.mark.django_db
def test_accepting_and_rejecting_are_audited_versioned_and_served_with_an_etag(sampled, admin_persona, client):
    admin = admin_persona.user
    catalog = current(sampled["shop"], "/catalog")
    recommendation_accept(recommendation=catalog, reason="hot route", by=admin)
    v1 = CacheConfig.objects.get(application=sampled["shop"])
    assert (v1.version, v1.routes) == (1, [{"route": "/catalog", "method": "GET", "ttl_seconds": 900}])
    accepted = AuditEvent.objects.get(action="traffic.recommendation.accept")
    assert accepted.target_id == str(catalog.pk) and accepted.message == "hot route"

    token = token_create(owner=admin, name="agent", by=admin)[1]
    machine = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_ICC_APPLICATION": str(sampled["shop"].pk)}
    served = client.get("/traffic/v1/cache-config", **machine)
    assert served.status_code == 200, served.content
    assert served.json() == {"version": 1, "routes": v1.routes}
    assert client.get("/traffic/v1/cache-config", HTTP_IF_NONE_MATCH=served["ETag"], **machine).status_code == 304

    # Recomputing keeps the decision (no new proposal for the same advice).
    recommendations_compute(application=sampled["shop"])
    assert not Recommendation.objects.filter(application=sampled["shop"], route="/catalog", state="proposed")
    with pytest.raises(ConflictError):
        recommendation_accept(recommendation=catalog, reason="", by=admin)
    with pytest.raises(DomainError) as missing:
        recommendation_reject(recommendation=catalog, reason=" ", by=admin)
    assert missing.value.field == "reason"

    recommendation_reject(recommendation=catalog, reason="content is per region now", by=admin)
    assert list(CacheConfig.objects.filter(application=sampled["shop"]).values_list("version", "routes")) == [
        (1, v1.routes),
        (2, []),
    ]
    assert AuditEvent.objects.filter(action="traffic.recommendation.reject").count() == 1
    again = client.get("/traffic/v1/cache-config", HTTP_IF_NONE_MATCH=served["ETag"], **machine)
    assert again.status_code == 200 and again.json() == {"version": 2, "routes": []}
    # Rejecting a proposal changes nothing served: no version.
    recommendation_reject(recommendation=current(sampled["shop"], "/cart"), reason="has cookies", by=admin)
    assert CacheConfig.objects.filter(application=sampled["shop"]).count() == 2


@pytest.mark.django_db
def test_the_machine_endpoint_needs_credentials_for_that_application(sampled, make_user, client):
    assert client.get("/traffic/v1/cache-config").status_code == 401
    blog_only = make_user("bea-blog").user
    bind(blog_only, "operator", sampled["cluster"], application="blog")
    token = token_create(owner=blog_only, name="agent", by=blog_only)[1]
    foreign = client.get(
        "/traffic/v1/cache-config",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_ICC_APPLICATION=str(sampled["shop"].pk),
    )
    assert foreign.status_code == 403
    mine = client.get(
        "/traffic/v1/cache-config", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_ICC_APPLICATION=str(sampled["blog"].pk)
    )
    assert mine.status_code == 200 and mine.json() == {"version": 0, "routes": []}


@pytest.mark.django_db
def test_viewers_operators_and_outsiders_cannot_decide(sampled, viewer_persona, operator_persona, outsider_persona):
    catalog = current(sampled["shop"], "/catalog")
    path = f"{API}/recommendations/{catalog.pk}/accept/"
    assert post_json(forced_login(viewer_persona.user), path, {"reason": "x"}).status_code == 403
    assert post_json(forced_login(operator_persona.user), path, {"reason": "x"}).status_code == 403
    assert post_json(forced_login(outsider_persona.user), path, {"reason": "x"}).status_code == 404
    for persona in (viewer_persona, operator_persona, outsider_persona):
        with pytest.raises(ForbiddenError):
            recommendation_accept(recommendation=catalog, reason="", by=persona.user)
    catalog.refresh_from_db()
    assert catalog.state == "proposed" and not CacheConfig.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="traffic.recommendation.accept").exists()
    # The operator may recompute; the viewer may not.
    compute = f"{API}/recommendations/compute/?application={sampled['shop'].pk}"
    assert post_json(forced_login(operator_persona.user), compute).json() == {"routes": 2}
    assert post_json(forced_login(viewer_persona.user), compute).status_code == 403
    assert post_json(forced_login(outsider_persona.user), compute).status_code == 404


@pytest.mark.django_db
def test_an_application_admin_decides_through_the_api(sampled, make_user):
    owner = make_user("sam-shop").user
    bind(owner, "admin", sampled["cluster"], application="shop")
    client = forced_login(owner)
    catalog = current(sampled["shop"], "/catalog")
    answer = post_json(client, f"{API}/recommendations/{catalog.pk}/accept/", {"reason": "ok"})
    assert answer.status_code == 200, answer.content
    assert answer.json()["state"] == "accepted" and answer.json()["decided_by"] == "sam-shop"
    assert results(client.get(f"{API}/cache-configs/"))[0]["routes"] == [
        {"route": "/catalog", "method": "GET", "ttl_seconds": 900}
    ]
    bad = post_json(client, f"{API}/recommendations/{catalog.pk}/reject/", {"reason": "x", "why": "typo"})
    assert bad.status_code == 400 and "why" in bad.json()["error"]["fields"]
    again = post_json(client, f"{API}/recommendations/{catalog.pk}/accept/", {})
    assert again.status_code == 409
    missing = post_json(client, f"{API}/recommendations/compute/")
    assert missing.status_code == 400 and "application" in missing.json()["error"]["fields"]


@pytest.mark.django_db
def test_scoped_users_read_only_their_applications_recommendations(sampled, make_user):
    reader = make_user("rita-shop").user
    bind(reader, "viewer", sampled["cluster"], application="shop")
    client = forced_login(reader)
    listed = results(client.get(f"{API}/recommendations/"))
    assert listed and {r["application"] for r in listed} == {sampled["shop"].pk}
    blog = Recommendation.objects.get(application=sampled["blog"], state="proposed")
    assert client.get(f"{API}/recommendations/{blog.pk}/").status_code == 404
    assert results(client.get(f"{API}/recommendations/", {"application": sampled["blog"].pk})) == []
    assert results(client.get(f"{API}/recommendations/", {"state": "accepted"})) == []
    assert client.get(f"{API}/recommendations/", {"state": "maybe"}).status_code == 400
    rows = recommend_selectors.recommendations_for(reader, sampled["shop"])
    assert [(r.route, r.kind) for r in rows] == [("/cart", "none"), ("/catalog", "ttl")]
    assert rows[1].estimate["hit_ratio"] > 0 and rows[1].evidence["samples"] == 360
    assert recommend_selectors.recommendations_for(reader, sampled["blog"]) == []
    assert not recommend_selectors.can_decide(reader, sampled["shop"])


@pytest.mark.django_db
def test_the_daily_task_recomputes_every_application_with_samples(shop):
    from apps.traffic.tasks import recommend as recommend_task

    sample_rows(shop["blog"], series("/posts", 100, 10), datetime.now(UTC))
    assert recommend_task() == 1
    assert Recommendation.objects.filter(application=shop["blog"], state="proposed").count() == 1
    assert not Recommendation.objects.filter(application=shop["shop"]).exists()


# --- the Traffic tab (portal) --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_traffic_tab_shows_the_evidence_and_only_deciders_get_the_buttons(sampled, make_user, viewer_persona):
    owner = make_user("sam-shop").user
    bind(owner, "admin", sampled["cluster"], application="shop")
    page = f"/traffic/applications/{sampled['shop'].pk}/"
    catalog = current(sampled["shop"], "/catalog")
    as_owner = forced_login(owner).get(page).content.decode()
    assert f'data-recommendation="{catalog.pk}"' in as_owner
    assert "Cache 900 s" in as_owner and "hit ratio 98.9 %" in as_owner and "stale hits 30" in as_owner
    assert "set a cookie (Set-Cookie)" in as_owner  # the /cart row's reason
    assert 'data-action="accept"' in as_owner and "traffic-recommendations-compute" in as_owner
    as_viewer = forced_login(viewer_persona.user).get(page).content.decode()
    assert f'data-recommendation="{catalog.pk}"' in as_viewer
    assert 'data-action="accept"' not in as_viewer and "traffic-recommendations-compute" not in as_viewer


@pytest.mark.django_db
def test_deciding_from_the_tab(sampled, make_user, viewer_persona):
    owner = make_user("sam-shop").user
    bind(owner, "admin", sampled["cluster"], application="shop")
    catalog = current(sampled["shop"], "/catalog")
    refused = forced_login(viewer_persona.user).post(f"/traffic/recommendations/{catalog.pk}/accept/")
    assert refused.status_code == 403
    catalog.refresh_from_db()
    assert catalog.state == "proposed"
    client = forced_login(owner)
    no_reason = client.post(f"/traffic/recommendations/{catalog.pk}/reject/", {"reason": ""}, follow=True)
    assert "say why" in no_reason.content.decode()
    catalog.refresh_from_db()
    assert catalog.state == "proposed"
    accepted = client.post(f"/traffic/recommendations/{catalog.pk}/accept/", {"reason": "hot"})
    assert accepted.status_code == 302 and accepted["Location"].endswith("#traffic-recommendations")
    catalog.refresh_from_db()
    assert (catalog.state, catalog.decided_by, catalog.decision_reason) == ("accepted", owner, "hot")
    assert CacheConfig.objects.get(application=sampled["shop"]).version == 1
    blog = Recommendation.objects.get(application=sampled["blog"], state="proposed")
    assert client.post(f"/traffic/recommendations/{blog.pk}/accept/").status_code == 404  # not the owner's app
    computed = client.post(f"/traffic/applications/{sampled['shop'].pk}/recommendations/compute/", follow=True)
    assert "recomputed for 2 routes" in computed.content.decode()


@pytest.mark.django_db
def test_the_admin_shows_recommendations_and_versions_read_only(sampled, admin_persona):
    recommendation_accept(recommendation=current(sampled["shop"], "/catalog"), reason="", by=admin_persona.user)
    client = forced_login(admin_persona.user)
    listed = client.get("/admin/traffic/recommendation/")
    assert listed.status_code == 200 and "/catalog" in listed.content.decode()
    assert client.get("/admin/traffic/cacheconfig/").status_code == 200
    assert client.get("/admin/traffic/recommendation/add/").status_code == 403
