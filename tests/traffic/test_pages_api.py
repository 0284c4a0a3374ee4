"""The traffic pages and read API (real PostgreSQL): per-application rates, error rates and quantiles from merged
sketches; the routes table sorted and paged; series; strict parameters; scoped users see their applications only,
an outsider nothing; the pages render with the vendored graph library."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.traffic import rollup
from apps.traffic.otlp import SERVER, SpanRecord
from tests.support.clients import bind, forced_login, html
from tests.support.rows import application_row, cluster_row

pytestmark = pytest.mark.django_db

API = "/api/v1/traffic"


def hour_start(hours_ago: int = 1) -> datetime:
    now = int(time.time())
    return datetime.fromtimestamp(now // 3600 * 3600 - hours_ago * 3600, UTC)


def served(app: Any, at: datetime, route: str, durations: list[float], *, method: str = "GET", status: int = 200):
    """Server spans of ``app`` ending at ``at`` (one minute's rows), rolled up through the real write path."""
    batch = rollup.Batch()
    for i, ms in enumerate(durations):
        record = SpanRecord(
            SERVER, "t", f"s{i}", "", at.timestamp(), ms, status >= 500, route, method, status, 10, "", "", ""
        )
        batch.route(app.pk, record)
    rollup.write(batch)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def near(found: float | None, wanted: float) -> bool:
    return found is not None and math.isclose(found, wanted, rel_tol=0.021, abs_tol=0.05)


@pytest.fixture
def fleet():
    cluster = cluster_row("prod")
    return {
        "cluster": cluster,
        "shop": application_row(cluster, "shop", "shop", []),
        "blog": application_row(cluster, "blog", "blog", []),
    }


@pytest.fixture
def hour(fleet):
    """Over one whole hour: shop's /items/{id} took 1..100 ms each minute for 30 minutes (3,000 requests), 300 more
    failed (5xx) at 200 ms; /health answered fast; blog had 10 requests."""
    start = hour_start()
    durations = [float(i) for i in range(1, 101)]
    for minute in range(30):
        at = start + timedelta(minutes=minute, seconds=30)
        served(fleet["shop"], at, "/items/{id}", durations)
        served(fleet["shop"], at, "/items/{id}", [200.0] * 10, status=503)
        served(fleet["shop"], at, "/health", [0.5, 0.7])
    served(fleet["blog"], start + timedelta(minutes=5), "/posts", [5.0] * 10, method="POST")
    every = [*durations * 30, *[200.0] * 300, *[0.5, 0.7] * 30]
    return {"start": start, "end": start + timedelta(hours=1), "shop_durations": every}


def window(hour: dict[str, Any]) -> dict[str, str]:
    return {"since": hour["start"].isoformat(), "until": hour["end"].isoformat()}


def test_applications_have_rates_error_rates_and_quantiles_of_merged_sketches(admin_persona, fleet, hour):
    client = forced_login(admin_persona.user)
    found = client.get(f"{API}/applications/", window(hour)).json()
    assert found["count"] == 2
    shop, blog = found["results"]
    assert (shop["name"], blog["name"]) == ("shop", "blog")  # busiest first
    assert shop["requests"] == 3000 + 300 + 60 and shop["errors"] == 300
    assert shop["rate"] == round(3360 / 3600, 3)
    assert shop["error_rate"] == round(300 / 3360, 4)
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        assert near(shop[name], exact(hour["shop_durations"], q)), (name, shop[name])
    assert shop["bytes"] == 3360 * 10
    # the series: minutes over one hour, 112 requests per minute for 30 of its 60 minutes
    assert len(shop["series"]) == 60
    assert shop["series"][:30] == [round(112 / 60, 3)] * 30 and shop["series"][30:] == [0.0] * 30
    assert blog["requests"] == 10 and blog["error_rate"] == 0 and near(blog["p95"], 5.0)


def test_a_range_that_is_not_whole_hours_adds_minute_rows_to_hour_rows(admin_persona, fleet, hour):
    """Ten minutes into the hour until its end plus the next hour: minute rows, then the next hour's row."""
    client = forced_login(admin_persona.user)
    since = hour["start"] + timedelta(minutes=10)
    found = client.get(f"{API}/applications/", {"since": since.isoformat(), "until": hour["end"].isoformat()}).json()
    shop = found["results"][0]
    assert shop["requests"] == 20 * 112  # minutes 10..29
    assert near(shop["p50"], exact([float(i) for i in range(1, 101)] * 20 + [200.0] * 200 + [0.5, 0.7] * 20, 0.5))


def test_routes_are_sorted_filtered_and_paged(admin_persona, fleet, hour):
    client = forced_login(admin_persona.user)
    base = {**window(hour), "application": fleet["shop"].pk}
    rows = client.get(f"{API}/routes/", base).json()
    assert rows["count"] == 2
    items, health = rows["results"]
    assert (items["route"], items["method"], items["requests"], items["errors"]) == ("/items/{id}", "GET", 3300, 300)
    assert near(items["p99"], exact([float(i) for i in range(1, 101)] * 30 + [200.0] * 300, 0.99))
    assert health["route"] == "/health" and health["errors"] == 0 and health["error_rate"] == 0
    by_latency = client.get(f"{API}/routes/", {**base, "sort": "latency"}).json()["results"]
    assert [r["route"] for r in by_latency] == ["/health", "/items/{id}"]
    assert by_latency[0]["p95"] is not None
    by_errors = client.get(f"{API}/routes/", {**base, "sort": "-errors"}).json()["results"]
    assert by_errors[0]["route"] == "/items/{id}"
    # status class 2 only: the failures are left out
    ok = client.get(f"{API}/routes/", {**base, "status_class": 2}).json()["results"]
    assert ok[0]["requests"] == 3000 and ok[0]["errors"] == 0
    assert client.get(f"{API}/routes/", {**base, "method": "POST"}).json()["count"] == 0
    # pages: one at a time
    first = client.get(f"{API}/routes/", {**base, "limit": 1}).json()
    second = client.get(f"{API}/routes/", {**base, "limit": 1, "offset": 1}).json()
    assert [first["results"][0]["route"], second["results"][0]["route"]] == ["/items/{id}", "/health"]
    assert first["next"] and not second["next"]
    # without an application: every readable application's routes
    everything = client.get(f"{API}/routes/", window(hour)).json()
    assert {(r["application"], r["route"]) for r in everything["results"]} == {
        (fleet["shop"].pk, "/items/{id}"),
        (fleet["shop"].pk, "/health"),
        (fleet["blog"].pk, "/posts"),
    }


def test_the_routes_table_of_a_thousand_routes_pages_fast(admin_persona, fleet):
    start = hour_start()
    batch = rollup.Batch()
    for i in range(1000):
        for ms in (3.0, 8.0, 40.0 + i % 50):
            batch.route(
                fleet["shop"].pk,
                SpanRecord(
                    SERVER, "t", "s", "", start.timestamp() + 90, ms, False, f"/r/{i}", "GET", 200, 1, "", "", ""
                ),
            )
    rollup.write(batch)
    client = forced_login(admin_persona.user)
    params = {
        "application": fleet["shop"].pk,
        "since": start.isoformat(),
        "until": (start + timedelta(hours=1)).isoformat(),
    }
    client.get(f"{API}/routes/", params)
    page = client.get(f"{API}/routes/", params).json()
    assert page["count"] == 1000 and len(page["results"]) == 50
    assert all(r["p95"] is not None for r in page["results"])


def test_series_per_minute_for_one_route(admin_persona, fleet, hour):
    client = forced_login(admin_persona.user)
    params = {**window(hour), "application": fleet["shop"].pk, "route": "/items/{id}"}
    found = client.get(f"{API}/routes/series/", params).json()
    assert found["level"] == "m" and len(found["points"]) == 60
    first = found["points"][0]
    assert (
        first["requests"] == 110
        and first["errors"] == 10
        and near(first["p50"], exact([*range(1, 101), *[200] * 10], 0.5))
    )
    assert found["points"][45]["requests"] == 0 and found["points"][45]["p95"] is None
    week = client.get(
        f"{API}/routes/series/",
        {
            "application": fleet["shop"].pk,
            "since": (hour["end"] - timedelta(days=7)).isoformat(),
            "until": hour["end"].isoformat(),
        },
    ).json()
    assert week["level"] == "h" and sum(p["requests"] for p in week["points"]) == 3300 + 60


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("applications/", {"since": "yesterday"}, "since"),
        ("applications/", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ("applications/", {"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ("applications/", {"application": "1"}, "application"),
        ("applications/", {"limit": "0"}, "limit"),
        ("routes/", {"sort": "fastest"}, "sort"),
        ("routes/", {"status_class": "7"}, "status_class"),
        ("routes/", {"method": "BREW"}, "method"),
        ("routes/", {"application": "x"}, "application"),
        ("routes/", {"colour": "red"}, "colour"),
        ("routes/series/", {}, "application"),
        ("graph/", {"diff_from": "1"}, "diff_to"),
        ("graph/", {"diff_from": "1", "diff_to": "2"}, "application"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(admin_persona, path, params, named):
    response = forced_login(admin_persona.user).get(f"{API}/{path}", params)
    assert response.status_code == 400, response.content
    assert named in response.json()["error"]["fields"], response.json()


def test_scoped_users_read_their_applications_only_and_an_outsider_nothing(make_user, outsider_persona, fleet, hour):
    shop_team = make_user("shop-team")
    bind(shop_team.user, "viewer", fleet["cluster"], application="shop")
    client = forced_login(shop_team.user)
    apps = client.get(f"{API}/applications/", window(hour)).json()["results"]
    assert [a["name"] for a in apps] == ["shop"]
    routes = client.get(f"{API}/routes/", window(hour)).json()["results"]
    assert {r["application"] for r in routes} == {fleet["shop"].pk}
    # asking for blog by id: nothing, not an error that tells it exists
    blog = client.get(f"{API}/routes/", {**window(hour), "application": fleet["blog"].pk}).json()
    assert blog["count"] == 0
    series = client.get(f"{API}/routes/series/", {**window(hour), "application": fleet["blog"].pk}).json()
    assert all(p["requests"] == 0 for p in series["points"])
    outsider = forced_login(outsider_persona.user)
    assert outsider.get(f"{API}/applications/", window(hour)).json()["count"] == 0
    assert outsider.get(f"{API}/routes/", window(hour)).json()["count"] == 0
    assert outsider.get(f"/traffic/applications/{fleet['shop'].pk}/").status_code == 404
    assert "shop" not in html(outsider.get("/traffic/", {"range": "24h"}))
    # the tab page of blog for the shop team: not found
    assert client.get(f"/traffic/applications/{fleet['blog'].pk}/").status_code == 404
    assert client.get("/api/v1/traffic/applications/").status_code == 200
    from django.test import Client

    assert Client().get(f"{API}/applications/").status_code in (401, 403)


def test_pages_render_with_sparklines_the_routes_table_and_the_vendored_graph_library(admin_persona, fleet, hour):
    client = forced_login(admin_persona.user)
    page = client.get("/traffic/", {"range": "24h"})
    assert page.status_code == 200
    body = html(page)
    assert f'data-application="{fleet["shop"].pk}"' in body and "<polyline" in body
    tab = html(client.get(f"/traffic/applications/{fleet['shop'].pk}/", {"range": "24h"}))
    assert "/{id}" in tab and "/health" in tab
    assert "traffic/vendor/cytoscape.min.js" in tab and 'id="traffic-graph"' in tab
    assert "traffic.application." in tab  # the page follows its live topic
    sorted_tab = html(client.get(f"/traffic/applications/{fleet['shop'].pk}/", {"range": "24h", "sort": "latency"}))
    assert sorted_tab.index("/health") < sorted_tab.index("/items/{id}")
    chart = html(
        client.get(
            f"/traffic/applications/{fleet['shop'].pk}/", {"range": "24h", "route": "/items/{id}", "method": "GET"}
        )
    )
    assert "data-route-chart" in chart
    graph = html(client.get("/traffic/graph/"))
    assert "traffic/vendor/cytoscape.min.js" in graph
    from django.contrib.staticfiles import finders

    assert finders.find("traffic/vendor/cytoscape.min.js")
    bad = client.get("/traffic/", {"range": "forever"})
    assert bad.status_code == 200 and "range" in html(bad)


def _buffered(app: Any, n: int = 3) -> None:
    from apps.traffic import buffer

    now = time.time()
    records = [
        list(SpanRecord(SERVER, "t", f"s{i}", "", now, 5.0, False, "/x", "GET", 200, 1, "", "", "")) for i in range(n)
    ]
    buffer.push(app.pk, rollup.SPANS, records)


@pytest.mark.django_db(transaction=True)
def test_a_flush_pushes_to_the_tabs_of_the_applications_it_touched_once_every_few_seconds(make_user, fleet):
    """The attack too: a user bound to shop subscribes to blog's topic; refused, and blog's data pushes nothing."""
    import asyncio

    from apps.core import redis_client
    from apps.traffic import buffer, events, tasks
    from tests.support.clients import with_binding
    from tests.support.websocket import connect, session_cookie

    buffer.clear()
    found = redis_client.client()
    assert found is not None
    for key in found.scan_iter("icc:traffic:live:*"):
        found.delete(key)
    shop, blog = fleet["shop"], fleet["blog"]
    cookie = session_cookie(with_binding(make_user("shop-viewer"), "viewer", fleet["cluster"], application="shop"))
    topics = ",".join(events.application(app.pk) for app in (shop, blog))

    def flushed(app: Any) -> int:
        from django.db import connection

        try:
            _buffered(app)
            return tasks.flush()
        finally:
            connection.close()  # this executor thread's own connection

    async def in_thread(function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)

    async def scenario() -> list[str]:
        communicator, connected, code = await connect(f"/ws/?topics={topics}", cookie)
        assert connected, code
        received = [await communicator.receive_from(timeout=10), await communicator.receive_from(timeout=10)]
        assert await in_thread(flushed, blog) == 3
        assert await communicator.receive_nothing(timeout=1.5), "blog's traffic is not the shop viewer's"
        assert await in_thread(flushed, shop) == 3
        received.append(await communicator.receive_from(timeout=10))
        assert await in_thread(flushed, shop) == 3
        assert await communicator.receive_nothing(timeout=1.5), "a second flush within seconds pushes nothing"
        await communicator.disconnect()
        return received

    first, second, pushed = asyncio.run(scenario())
    assert any(f"not allowed to follow {events.application(blog.pk)}" in m for m in (first, second))
    assert any('id="traffic-live-refresh"' in m for m in (first, second))
    assert 'id="traffic-live-refresh"' in pushed and f"/traffic/applications/{shop.pk}/live/" in pushed


def test_a_range_is_read_from_the_coarsest_rows_inside_it():
    from apps.traffic.queries import cover

    now = datetime(2026, 12, 6, 10, 44, 20, tzinfo=UTC)
    hour = datetime(2026, 12, 6, 8, tzinfo=UTC)
    assert cover(hour, hour + timedelta(hours=1), now) == [("h", hour, hour + timedelta(hours=1))]
    # the last hour: the minutes of the previous hour, then the current hour's row (nothing is stored after now)
    last = cover(now - timedelta(hours=1), now, now)
    assert last == [
        ("m", datetime(2026, 12, 6, 9, 44, tzinfo=UTC), datetime(2026, 12, 6, 10, tzinfo=UTC)),
        ("h", datetime(2026, 12, 6, 10, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
    ]
    # two days before yesterday: whole days; minute rows past their retention widen the ends to hours
    old = cover(datetime(2026, 11, 20, 7, 30, tzinfo=UTC), datetime(2026, 11, 23, 5, 10, tzinfo=UTC), now)
    assert old == [
        ("h", datetime(2026, 11, 20, 7, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)),
        ("h", datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 23, 6, tzinfo=UTC)),
        ("d", datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)),
    ]
