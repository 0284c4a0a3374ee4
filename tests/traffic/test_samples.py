"""The request-sample endpoint (``POST /traffic/v1/samples``, real PostgreSQL and Redis): a valid batch is buffered
and stored by the rollup; every bad field is a 400 naming it (``samples[1].status``) and buffers nothing; size,
count and rate limits; credentials exactly as for traces, and another application's token is refused."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from typing import Any

import pytest

from apps.traffic import buffer, rollup
from apps.traffic.models import Sample
from apps.users.tokens import token_create
from tests.support.clients import bind
from tests.support.rows import application_row, cluster_row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_traffic")]

URL = "/traffic/v1/samples"
BODY_HASH = hashlib.sha256(b"hello").hexdigest()


@pytest.fixture
def apps_():
    cluster = cluster_row("prod")
    return {name: application_row(cluster, "shop", name, []) for name in ("frontend", "checkout")}


@pytest.fixture
def token(apps_, operator_persona):
    return token_create(owner=operator_persona.user, name="agent", by=operator_persona.user)[1]


def auth(token: str, application: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_ICC_APPLICATION": str(application.pk)}


def good(**changes: Any) -> dict[str, Any]:
    sample = {
        "route": "/items/{id}",
        "method": "get",
        "status": 200,
        "duration_ms": 12.5,
        "size": 5,
        "body_hash": BODY_HASH,
        "cache_control": "public, max-age=60",
        "etag": '"v1"',
        "vary": "Accept-Encoding",
    }
    return {**sample, **changes}


def post(client, samples: list[Any], headers: dict[str, str], **extra: Any):
    return client.post(URL, json.dumps({"samples": samples}), content_type="application/json", **headers, **extra)


def test_a_valid_batch_is_stored_after_the_rollup(client, apps_, token):
    at = time.time() - 90
    batch = [
        good(at=at),
        good(route="/login", method="POST", status=302, set_cookie=True, authorization=True, body_hash=""),
        good(expires="Thu, 01 Jan 2037 00:00:00 GMT", last_modified="Wed, 01 Jan 2025 00:00:00 GMT", size=0),
    ]
    answer = post(client, batch, auth(token, apps_["frontend"]))
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"accepted": 3}
    zipped = client.post(
        URL,
        gzip.compress(json.dumps({"samples": [good(route="/zipped")]}).encode()),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
        **auth(token, apps_["frontend"]),
    )
    assert zipped.status_code == 200
    assert buffer.held() == 4
    assert Sample.objects.count() == 0  # nothing written before the rollup
    while rollup.flush():
        continue
    rows = {s.route: s for s in Sample.objects.filter(application=apps_["frontend"])}
    assert set(rows) == {"/items/{id}", "/login", "/zipped"}
    items = Sample.objects.filter(route="/items/{id}").order_by("at")
    first = items[0]
    assert abs(first.at.timestamp() - at) < 0.01
    assert (first.method, first.status, first.duration_ms, first.size) == ("GET", 200, 12.5, 5)
    assert (first.body_hash, first.cache_control, first.etag, first.vary) == (
        BODY_HASH,
        "public, max-age=60",
        '"v1"',
        "Accept-Encoding",
    )
    assert abs(items[1].at.timestamp() - time.time()) < 60  # no "at": received now
    assert items[1].expires.startswith("Thu") and items[1].last_modified.startswith("Wed")
    login = rows["/login"]
    assert login.set_cookie and login.authorization and login.status == 302 and not login.body_hash
    assert not first.set_cookie and not first.authorization
    assert not Sample.objects.filter(application=apps_["checkout"]).exists()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"status": 700}, "samples[1].status"),
        ({"status": "200"}, "samples[1].status"),
        ({"status": True}, "samples[1].status"),
        ({"duration_ms": -1}, "samples[1].duration_ms"),
        ({"duration_ms": "fast"}, "samples[1].duration_ms"),
        ({"size": 1.5}, "samples[1].size"),
        ({"route": ""}, "samples[1].route"),
        ({"route": None}, "samples[1].route"),
        ({"route": "/x" * 200}, "samples[1].route"),
        ({"method": "GET /x"}, "samples[1].method"),
        ({"body_hash": "abc"}, "samples[1].body_hash"),
        ({"cache_control": "x" * 301}, "samples[1].cache_control"),
        ({"etag": 5}, "samples[1].etag"),
        ({"vary": "a\nb"}, "samples[1].vary"),
        ({"set_cookie": "yes"}, "samples[1].set_cookie"),
        ({"authorization": 1}, "samples[1].authorization"),
        ({"at": time.time() + 3600}, "samples[1].at"),
        ({"at": time.time() - 30 * 86400}, "samples[1].at"),
        ({"path": "/items/42"}, "samples[1].path"),
    ],
)
def test_a_bad_field_is_named_and_nothing_is_buffered(client, apps_, token, bad, field):
    answer = post(client, [good(), good(**bad), good()], auth(token, apps_["frontend"]))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert list(error["fields"]) == [field]
    assert field in error["message"]
    assert buffer.held() == 0


def test_bad_bodies(client, apps_, token):
    h = auth(token, apps_["frontend"])
    cases = {
        b"{not json": "body",
        b'{"other": []}': "samples",
        b'{"samples": {}}': "samples",
        b'{"samples": [42]}': "samples[0]",
    }
    for body, field in cases.items():
        answer = client.post(URL, body, content_type="application/json", **h)
        assert answer.status_code == 400, body
        assert list(answer.json()["error"]["fields"]) == [field]
    assert client.post(URL, b"{}", content_type="text/plain", **h).status_code == 415
    broken = client.post(URL, b"not gzip", content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **h)
    assert broken.status_code == 400
    assert client.post(URL, b"{}", content_type="application/json", HTTP_CONTENT_ENCODING="br", **h).status_code == 415
    assert client.get(URL, **h).status_code == 405
    assert buffer.held() == 0


def test_limits(client, apps_, token, settings):
    h = auth(token, apps_["frontend"])
    too_many = post(client, [good()] * 1001, h)
    assert too_many.status_code == 413 and "1000" in too_many.json()["error"]["message"]
    declared = client.post(URL, b"{}", content_type="application/json", CONTENT_LENGTH=str(1024 * 1024 + 1), **h)
    assert declared.status_code == 413
    padded = json.dumps({"samples": [good()], "padding": "x" * (1024 * 1024)}).encode()
    bomb = client.post(URL, gzip.compress(padded), content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **h)
    assert bomb.status_code == 413 and "decompressed" in bomb.json()["error"]["message"]
    assert post(client, [good()] * 1000, h).status_code == 200  # exactly the limit
    assert buffer.held() == 1000
    buffer.clear()
    # The application's rate (shared with spans) and the buffer's bound answer like the trace receiver.
    settings.TRAFFIC_RATE_LIMIT_SPANS_PER_S = 10
    over = post(client, [good()] * 11, h)
    assert over.status_code == 429 and over["Retry-After"] == "1"
    settings.TRAFFIC_RATE_LIMIT_SPANS_PER_S = 100000
    settings.TRAFFIC_BUFFER_MAX_SPANS = 5
    full = post(client, [good()] * 6, h)
    assert full.status_code == 503 and full["Retry-After"] == "5"
    assert buffer.held() == 0


def test_credentials_as_for_traces(client, apps_, token, make_user):
    batch = [good()]
    assert post(client, batch, {}).status_code == 401
    assert post(client, batch, auth("icc_00000000_nope", apps_["frontend"])).status_code == 401
    # A ServiceAccount token needs the cluster it comes from.
    assert post(client, batch, {"HTTP_AUTHORIZATION": "Bearer eyJhbGciOi.x.y"}).status_code == 401
    no_app = post(client, batch, {"HTTP_AUTHORIZATION": f"Bearer {token}"})
    assert no_app.status_code == 400 and "X-ICC-Application" in no_app.json()["error"]["message"]
    # A user bound to checkout only: may send for checkout, not for frontend.
    scoped = make_user("scoped").user
    bind(scoped, "operator", apps_["checkout"].cluster, "shop", "checkout")
    theirs = token_create(owner=scoped, name="checkout", by=scoped)[1]
    assert post(client, batch, auth(theirs, apps_["checkout"])).status_code == 200
    foreign = post(client, batch, auth(theirs, apps_["frontend"]))
    assert foreign.status_code == 403
    # A viewer may read the application but not send for it.
    viewer = make_user("reader").user
    bind(viewer, "viewer", apps_["frontend"].cluster, "shop", "frontend")
    reader = token_create(owner=viewer, name="reader", by=viewer)[1]
    assert post(client, batch, auth(reader, apps_["frontend"])).status_code == 403
    assert buffer.held() == 1
    while rollup.flush():
        continue
    assert list(Sample.objects.values_list("application__name", flat=True)) == ["checkout"]
