"""The Python agent (agent/, package ``icc_agent``) in real applications served by real servers: a Starlette app
under uvicorn and a WSGI app under wsgiref send samples to a real ICC (route templates from the framework or the
configured function, never raw paths; body hashes; caching headers; the ServiceAccount-style token file read again
when it rotates). With ICC down, thousands of requests all succeed while the agent's queue and memory stay at their
cap and its attempts back off; Django's route middleware hands the matched pattern to the WSGI middleware."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import uvicorn
from icc_agent import Agent, ASGIMiddleware, WSGIMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from apps.traffic import rollup
from apps.traffic.models import Sample
from apps.users.tokens import token_create
from tests.support.clusters import sa_token
from tests.support.components import free_port
from tests.support.rows import application_row, cluster_row

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_traffic")]


@pytest.fixture
def shop(operator_persona):
    application = application_row(cluster_row("prod"), "shop", "frontend", [])
    token = token_create(owner=operator_persona.user, name="agent", by=operator_persona.user)[1]
    return application, token


async def item(request: Request) -> JSONResponse:
    headers = {"Cache-Control": "public, max-age=60", "ETag": '"v1"', "Vary": "Accept-Encoding"}
    return JSONResponse({"item": request.path_params["item_id"]}, headers=headers)


async def login(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("welcome", headers={"Cache-Control": "private, no-store"})
    response.set_cookie("session", "abc")
    return response


async def order(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"order {request.path_params['number']}")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("the application fails on its own")


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/login", login, methods=["POST"]),
            Mount("/api", routes=[Route("/orders/{number:int}", order)]),
            Route("/boom", boom),
        ]
    )


@contextmanager
def uvicorn_serving(app: Any) -> Iterator[int]:
    """A real uvicorn server for ``app`` in a thread; yields its port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        thread.join(0.05)
    assert server.started
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def wsgiref_serving(app: Callable[..., Any]) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def write_token(path: str, token: str) -> None:
    """Replace the file as the kubelet does (a new file renamed over the old one)."""
    with open(f"{path}.new", "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.replace(f"{path}.new", path)


def files(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A minimal WSGI app: a 3 KiB file body in chunks, part of it through the legacy write() callable."""
    name = environ["PATH_INFO"].rsplit("/", 1)[-1]
    write = start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Last-Modified", "Wed, 01 Jan 2025 00:00:00 GMT")]
    )
    write(b"a" * 1024)
    return [name.encode().ljust(1024, b"."), b"c" * 1024]


def test_the_agent_sends_samples_from_asgi_and_wsgi_apps_to_icc(icc_server, shop, tmp_path):
    application, token = shop
    token_file = str(tmp_path / "token")
    write_token(token_file, "icc_00000000_not-a-valid-token")
    asgi_agent = Agent(
        url=icc_server.url,
        token_file=token_file,
        application=str(application.pk),
        flush_seconds=0.1,
        max_backoff_seconds=0.5,
    )
    with uvicorn_serving(ASGIMiddleware(starlette_app(), agent=asgi_agent)) as port:
        bodies = [call(port, "GET", path) for path in ("/items/1", "/items/2", "/items/2")]
        assert [status for status, _ in bodies] == [200, 200, 200]
        assert call(port, "POST", "/login", {"Authorization": "Basic dTpw"})[0] == 200
        assert call(port, "GET", "/api/orders/7") == (200, b"order 7")
        assert call(port, "GET", "/nowhere/42")[0] == 404
        assert call(port, "GET", "/boom")[0] == 500
    # The token file held a bad token: ICC refused, the agent kept the batch and backs off.
    assert not asgi_agent.flush(timeout=1.0)
    refused = asgi_agent.stats()
    assert refused["sent"] == 0 and refused["failures"] >= 1 and refused["queued"] + refused["held"] == 7
    write_token(token_file, token)  # rotated: read again on the next attempt
    assert asgi_agent.flush(timeout=20), asgi_agent.stats()
    assert asgi_agent.stats()["sent"] == 7 and asgi_agent.stats()["dropped"] == 0

    wsgi_agent = Agent(
        url=icc_server.url,
        api_token=token,
        application=str(application.pk),
        hash_kib=1,
        route_of=lambda environ: "/files/{name}" if environ["PATH_INFO"].startswith("/files/") else None,
    )
    with wsgiref_serving(WSGIMiddleware(files, agent=wsgi_agent)) as port:
        status, file_body = call(port, "GET", "/files/report.txt")
        assert status == 200 and len(file_body) == 3072
    assert wsgi_agent.flush(timeout=20), wsgi_agent.stats()
    for agent in (asgi_agent, wsgi_agent):
        agent.close(timeout=0)

    while rollup.flush():
        continue
    samples = list(Sample.objects.filter(application=application).order_by("id"))
    by_route: dict[str, list[Sample]] = {}
    for sample in samples:
        by_route.setdefault(sample.route, []).append(sample)
    assert set(by_route) == {
        "/items/{item_id}",
        "/login",
        "/api/orders/{number:int}",
        "unmatched",
        "/boom",
        "/files/{name}",
    }
    assert not any(s.route.startswith(("/items/1", "/items/2", "/nowhere")) for s in samples)  # never raw paths
    items = by_route["/items/{item_id}"]
    assert len(items) == 3 and {s.body_hash for s in items} == {sha(b) for _, b in bodies}
    first = items[0]
    assert (first.method, first.status, first.cache_control, first.etag, first.vary) == (
        "GET",
        200,
        "public, max-age=60",
        '"v1"',
        "Accept-Encoding",
    )
    assert first.size == len(bodies[0][1]) and first.duration_ms > 0
    assert not first.set_cookie and not first.authorization
    logged_in = by_route["/login"][0]
    assert logged_in.method == "POST" and logged_in.set_cookie and logged_in.authorization
    assert logged_in.cache_control == "private, no-store" and logged_in.body_hash == sha(b"welcome")
    assert by_route["unmatched"][0].status == 404
    assert by_route["/boom"][0].status == 500
    served = by_route["/files/{name}"][0]
    assert served.size == 3072 and served.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
    # Only the first KiB is hashed, with the length beside it.
    assert served.body_hash == hashlib.sha256(file_body[:1024] + b"\x00length=3072").hexdigest()


def test_with_icc_down_every_request_succeeds_and_the_agent_stays_bounded():
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cap, batch = 200, 50
    agent = Agent(
        url=closed,
        api_token="icc_00000000_unused",
        application="1",
        queue_size=cap,
        batch_size=batch,
        flush_seconds=0.05,
        max_per_second=1_000_000,
        timeout_seconds=0.5,
        max_backoff_seconds=5,
    )
    highest = {"queued": 0, "held": 0}
    watching = threading.Event()

    def watch() -> None:
        while not watching.wait(0.002):
            stats = agent.stats()
            highest["queued"] = max(highest["queued"], int(stats["queued"]))
            highest["held"] = max(highest["held"], int(stats["held"]))

    def client(count: int, answers: list[tuple[int, bytes]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(count):
            connection.request("GET", f"/items/{i}")
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        connection.close()

    def load(clients: int, each: int) -> list[tuple[int, bytes]]:
        answers: list[list[tuple[int, bytes]]] = [[] for _ in range(clients)]
        threads = [threading.Thread(target=client, args=(each, answers[n])) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        return [a for per_client in answers for a in per_client]

    def agent_memory() -> int:
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*icc_agent*")])
        return sum(stat.size for stat in snapshot.statistics("filename"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    tracemalloc.start()
    try:
        with uvicorn_serving(ASGIMiddleware(starlette_app(), agent=agent)) as port:
            began = time.monotonic()
            warm = load(4, 250)
            at_cap = agent_memory()
            rest = load(8, 250)
            after = agent_memory()
            elapsed = time.monotonic() - began
    finally:
        tracemalloc.stop()
        watching.set()
        watcher.join(5)
        agent.close(timeout=0)
    answers = warm + rest
    assert len(answers) == 3000
    assert all(status == 200 for status, _ in answers)
    assert all(json.loads(body)["item"].isdigit() for _, body in answers)
    stats = agent.stats()
    assert stats["errors"] == 0 and stats["capped"] == 0
    assert stats["sampled"] + stats["dropped"] == 3000  # every request was either queued or counted as dropped
    assert stats["dropped"] >= 3000 - cap - batch * 2
    assert highest["queued"] <= cap and stats["queued"] <= cap
    assert highest["held"] <= batch
    assert stats["sent"] == 0 and stats["failures"] == stats["attempts"] >= 1
    # Backoff: the wait doubles after each failed attempt (without it: one attempt every 0.05 s).
    assert stats["backoff_seconds"] >= 1 and stats["attempts"] <= 4 + elapsed / 2, (stats, elapsed)
    # Memory held by the agent's allocations stays flat from the first 1,000 requests to 3,000 (the cap, not
    # the traffic, bounds it): about a kilobyte per queued sample.
    assert after <= at_cap * 1.25 + 64 * 1024, (at_cap, after)
    assert after <= (cap + batch) * 4096, after


@pytest.mark.timeout(45 * 60)
def test_the_agent_sends_with_the_workloads_service_account_token(icc_server, shop_and_blog, k8s_api, tmp_path):
    """Machine identity: the shop's ServiceAccount token (TokenReview on the real kube-apiserver) and the cluster's
    name; ICC maps the token to the shop, whatever the agent sends."""
    cluster, namespace, apps = shop_and_blog["cluster"], shop_and_blog["namespace"], shop_and_blog["apps"]
    token_file = str(tmp_path / "token")
    write_token(token_file, sa_token(k8s_api, namespace, "shop-sa"))
    agent = Agent(url=icc_server.url, cluster=cluster.name, token_file=token_file, flush_seconds=0.1)
    served = WSGIMiddleware(files, agent=agent)
    try:
        for name in ("a", "b"):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/files/{name}", "wsgi.input": io.BytesIO(b"")}
            body = served(environ, lambda status, headers, exc_info=None: lambda data: None)
            b"".join(body)
            body.close()  # type: ignore[attr-defined]
        assert agent.flush(timeout=30), agent.stats()
    finally:
        agent.close(timeout=0)
    while rollup.flush():
        continue
    assert Sample.objects.filter(application=apps["shop"], route="unmatched", size=3072).count() == 2
    assert not Sample.objects.filter(application=apps["blog"]).exists()


class Capturing(Agent):
    """An agent that also keeps what it queues, for the test to read."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.seen: list[dict[str, Any]] = []

    def record(self, sample: dict[str, Any]) -> None:
        self.seen.append(sample)
        super().record(sample)


def test_django_route_middleware_hands_the_pattern_to_the_wsgi_middleware(settings):
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "icc_agent.django.RouteMiddleware"]
    agent = Capturing(url=f"http://127.0.0.1:{free_port()}", api_token="icc_x", application="1", timeout_seconds=0.2)
    application = WSGIMiddleware(WSGIHandler(), agent=agent)
    started: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        started.append(status)
        return lambda data: None

    try:
        for path in ("/clusters/42/", "/no/such/page/"):
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": path,
                "SERVER_NAME": "testserver",
                "SERVER_PORT": "80",
                "HTTP_HOST": "testserver",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""),
                "wsgi.errors": sys.stderr,
            }
            body = application(environ, start_response)
            b"".join(body)
            body.close()  # type: ignore[attr-defined]
    finally:
        agent.close(timeout=0)
    assert [status[:3] for status in started] == ["302", "404"]
    assert [(s["route"], s["status"]) for s in agent.seen] == [("/clusters/<int:pk>/", 302), ("unmatched", 404)]


def test_settings_sampling_and_failures_inside_the_agent_never_reach_the_application(caplog):
    from icc_agent.config import load

    # The environment is read leniently (a typo falls back to the default), arguments strictly.
    config = load({"ICC_URL": "http://icc:8000", "ICC_SAMPLE_RATE": "lots", "ICC_QUEUE_SIZE": "50"})
    assert (config.url, config.sample_rate, config.queue_size) == ("http://icc:8000", 1.0, 50)
    assert "ICC_SAMPLE_RATE" in caplog.text
    assert load({"ICC_QUEUE_SIZE": "50"}, queue_size=7).queue_size == 7
    with pytest.raises(ValueError, match="sample_rate"):
        load({}, sample_rate=2)
    with pytest.raises(ValueError, match="batch_size"):
        load({}, batch_size=5000)  # ICC takes at most 1,000 per request
    # Without ICC's URL the middleware only passes requests through; a missing CA file does not stop start-up.
    assert not Agent(url="", ca_file="/nonexistent/ca.pem").admit()

    closed = f"http://127.0.0.1:{free_port()}"
    never = Agent(url=closed, api_token="t", application="1", sample_rate=0.0, timeout_seconds=0.1)
    capped = Agent(url=closed, api_token="t", application="1", max_per_second=5, timeout_seconds=0.1)
    failing = Capturing(url=closed, api_token="t", application="1", timeout_seconds=0.1, route_of=lambda environ: 1 / 0)
    try:
        assert not any(never.admit() for _ in range(100)) and never.stats()["skipped"] == 100
        assert sum(capped.admit() for _ in range(100)) <= 10 and capped.stats()["capped"] >= 90
        served = WSGIMiddleware(files, agent=failing)
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/files/a", "wsgi.input": io.BytesIO(b"")}
        body = served(environ, lambda status, headers, exc_info=None: lambda data: None)
        assert len(b"".join(body)) == 2048  # plus 1 KiB through write(): the response is untouched
        body.close()  # type: ignore[attr-defined]
    finally:
        for agent in (never, capped, failing):
            agent.close(timeout=0)
    assert failing.stats()["errors"] == 1  # route_of raised: counted, the sample is kept as unmatched
    assert [s["route"] for s in failing.seen] == ["unmatched"]
    assert failing.seen[0]["size"] == 3072
