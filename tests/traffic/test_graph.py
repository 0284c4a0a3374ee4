"""The service graph through the API and the pages (real PostgreSQL and Redis): spans posted to the receiver become
nodes (applications, virtual databases, peers and unknown callers) and edges with both sides' latencies; one hop
around an application; diff mode between two versions flags new, removed and slower edges; a scoped user sees the
edges touching their application with the other ends nameless, an outsider nothing."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from apps.clusters.models import ApplicationVersion
from apps.traffic import rollup
from apps.users.tokens import token_create
from tests.support.clients import bind, forced_login, html
from tests.support.otlp import span
from tests.support.rows import application_row, cluster_row

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_traffic")]

GRAPH = "/api/v1/traffic/graph/"


@pytest.fixture
def shop():
    cluster = cluster_row("prod")
    apps_ = {name: application_row(cluster, "shop", name, []) for name in ("frontend", "checkout", "payments")}
    return {"cluster": cluster, **apps_}


def _post(client: Any, token: str, app: Any, *spans: Span) -> None:
    body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])])
    answer = client.post(
        "/traffic/v1/traces",
        body.SerializeToString(),
        content_type="application/x-protobuf",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_ICC_APPLICATION=str(app.pk),
    )
    assert answer.status_code == 200, answer.content


@pytest.fixture
def chain(client, shop, operator_persona, settings):
    """frontend → checkout → payments → postgresql, payments → an uninstrumented card gateway, and a caller
    that sends no spans → frontend; posted through the receiver out of order and flushed."""
    settings.TRAFFIC_PAIRING_SECONDS = 1
    token = token_create(owner=operator_persona.user, name="otel", by=operator_persona.user)[1]
    start = time.time_ns() - 5 * 10**9
    for i in range(20):
        trace = os.urandom(16)
        f_server, f_client, c_server, c_client, p_server, p_db, p_peer = (os.urandom(8) for _ in range(7))
        server = Span.SPAN_KIND_SERVER
        client_kind = Span.SPAN_KIND_CLIENT
        _post(
            client,
            token,
            shop["payments"],
            span(trace, p_server, c_client, server, start, 40 + i, **{"http.route": "/pay"}),
            span(trace, p_db, p_server, client_kind, start, 10, **{"db.system": "postgresql"}),
            span(trace, p_peer, p_server, client_kind, start, 20, **{"peer.service": "card-gateway"}),
        )
        _post(
            client,
            token,
            shop["frontend"],
            span(trace, f_server, os.urandom(8), server, start, 100, **{"http.route": "/buy"}),
            span(trace, f_client, f_server, client_kind, start, 80 + i),
        )
        _post(
            client,
            token,
            shop["checkout"],
            span(trace, c_server, f_client, server, start, 70 + i, **{"http.route": "/orders"}),
            span(trace, c_client, c_server, client_kind, start, 50 + i),
        )
    done = rollup.flush()
    while done:  # until the buffer is empty
        done = rollup.flush()
    time.sleep(1.2)  # past the pairing window: the card gateway and the frontend's caller become virtual nodes
    rollup.flush()
    return {n: f"app:{shop[n].pk}" for n in ("frontend", "checkout", "payments")}


def test_the_fleet_graph_has_virtual_nodes_and_both_sides_latencies(admin_persona, shop, chain):
    found = forced_login(admin_persona.user).get(GRAPH, {"since": (timezone.now() - timedelta(hours=1)).isoformat()})
    graph = found.json()
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    f, c, p = chain["frontend"], chain["checkout"], chain["payments"]
    assert kinds == {
        f: "app",
        c: "app",
        p: "app",
        "db:postgresql": "db",
        "peer:card-gateway": "peer",
        "unknown": "unknown",
    }
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    assert labels[c] == "checkout" and labels["db:postgresql"] == "postgresql"
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert set(edges) == {(f, c), (c, p), (p, "db:postgresql"), (p, "peer:card-gateway"), ("unknown", f)}
    first = edges[(f, c)]
    assert first["calls"] == 20 and first["unpaired"] == 0 and first["errors"] == 0
    assert first["client_p50"] == pytest.approx(89.5, rel=0.03) and first["server_p50"] == pytest.approx(79.5, rel=0.03)
    assert first["client_p95"] > first["server_p95"]
    assert edges[(p, "peer:card-gateway")]["unpaired"] == 20 and edges[(p, "peer:card-gateway")]["server_p95"] is None
    assert edges[("unknown", f)]["unpaired"] == 20 and edges[("unknown", f)]["client_p95"] is None
    # one hop each way around checkout
    around = forced_login(admin_persona.user).get(GRAPH, {"application": shop["checkout"].pk}).json()
    assert {(e["source"], e["target"]) for e in around["edges"]} == {(f, c), (c, p)}


def test_a_scoped_user_sees_the_edges_touching_their_application_and_an_outsider_nothing(
    make_user, outsider_persona, shop, chain
):
    team = make_user("checkout-team")
    bind(team.user, "viewer", shop["cluster"], application="checkout")
    graph = forced_login(team.user).get(GRAPH).json()
    c = chain["checkout"]
    ends = {(e["source"], e["target"]) for e in graph["edges"]}
    assert len(ends) == 2 and all(c in pair for pair in ends)
    others = [n for n in graph["nodes"] if n["id"] != c]
    assert [n["label"] for n in others] == ["another application", "another application"]
    assert all(n["application"] is None and n["id"].startswith("other:") for n in others)
    text = str(graph)
    assert "frontend" not in text and "payments" not in text and "postgresql" not in text
    assert chain["frontend"] not in text and chain["payments"] not in text
    # the graph around someone else's application: nothing but what touches checkout
    around = forced_login(team.user).get(GRAPH, {"application": shop["payments"].pk}).json()
    assert [(e["source"], e["target"][:6]) for e in around["edges"]] == [(c, "other:")]
    nothing = forced_login(outsider_persona.user).get(GRAPH).json()
    assert nothing["nodes"] == [] and nothing["edges"] == []
    page = html(forced_login(team.user).get("/traffic/graph/"))
    assert "another application" in page and "payments" not in page


def _version(app: Any, hours_ago: float, revision: str) -> ApplicationVersion:
    return ApplicationVersion.objects.create(
        application=app,
        workload_kind="Deployment",
        workload_name=f"{app.name}-w",
        revision=revision,
        images=[f"{app.name}:{revision}"],
        observed_at=timezone.now() - timedelta(hours=hours_ago),
    )


def _calls(when: Any, source: str, target: str, ms: float, n: int = 50) -> None:
    batch = rollup.Batch()
    for i in range(n):
        batch.edge(when.timestamp(), source, target, client_ms=ms + i % 3, server_ms=ms - 1, error=False)
    rollup.write(batch)


def test_diff_mode_flags_new_removed_and_slower_edges(admin_persona, shop):
    checkout = shop["checkout"]
    old, new = _version(checkout, 3, "1"), _version(checkout, 1, "2")
    f, c, p = (f"app:{shop[n].pk}" for n in ("frontend", "checkout", "payments"))
    before, after = timezone.now() - timedelta(hours=2, minutes=30), timezone.now() - timedelta(minutes=30)
    _calls(before, f, c, 20)
    _calls(before, c, p, 10)
    _calls(before, c, "db:redis", 2)
    _calls(after, f, c, 21)  # about the same: unchanged
    _calls(after, c, p, 40)  # four times slower
    _calls(after, c, "peer:stripe", 100)  # new
    client = forced_login(admin_persona.user)
    found = client.get(GRAPH, {"application": checkout.pk, "diff_from": old.pk, "diff_to": new.pk}).json()
    changes = {(e["source"], e["target"]): e["change"] for e in found["edges"]}
    assert changes == {(f, c): "", (c, p): "slower", (c, "db:redis"): "removed", (c, "peer:stripe"): "new"}
    slower = next(e for e in found["edges"] if e["change"] == "slower")
    assert slower["before_p95"] == pytest.approx(12, rel=0.03) and slower["client_p95"] == pytest.approx(42, rel=0.03)
    assert {n["id"] for n in found["nodes"]} == {f, c, p, "db:redis", "peer:stripe"}
    # the page draws the same diff
    page = html(client.get(f"/traffic/applications/{checkout.pk}/", {"diff_from": old.pk, "diff_to": new.pk}))
    for change in ("new", "removed", "slower"):
        assert f'data-change="{change}"' in page
    # another application's version, or one the caller cannot read: refused, naming it
    other = _version(shop["payments"], 2, "9")
    refused = client.get(GRAPH, {"application": checkout.pk, "diff_from": other.pk, "diff_to": new.pk})
    assert refused.status_code == 400 and "diff_from" in refused.json()["error"]["fields"]
    viewer_of_payments = forced_login(_user_bound_to(shop, "payments"))
    hidden = viewer_of_payments.get(GRAPH, {"application": checkout.pk, "diff_from": old.pk, "diff_to": new.pk})
    assert hidden.status_code == 400 and "diff_from" in hidden.json()["error"]["fields"]


def _user_bound_to(shop: dict[str, Any], name: str) -> Any:
    from apps.users.services import user_create

    user = user_create(username=f"team-{name}", password=f"pw-team-{name}-Correct-Horse-42")
    bind(user, "viewer", shop["cluster"], application=name)
    return user
