"""Settings > System: roles with versions, leases and holders, queue depths and heartbeats, for admins only; the
banner every page shows while a dependency is down; the cluster-wide lease and role gauges on /metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings

from apps.core import health, heartbeats
from apps.core.leases import holder_id, lease_acquire, lease_release

pytestmark = pytest.mark.django_db

CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def signed_in(persona) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    assert client.login(username=persona.username, password=persona.password)
    return client


@pytest.fixture(autouse=True)
def _fresh_banner_memo() -> Iterator[None]:
    health._recent.clear()
    yield
    health._recent.clear()


def test_admins_see_roles_leases_queue_depths_and_heartbeats(admin_persona):
    held = lease_acquire("beat", holder_id(), 30)
    released = lease_acquire("watch:4242", "gone-host:1:abcd", 30)
    assert held is not None and released is not None
    lease_release(released)
    assert heartbeats.beat_once("worker", extra={"leases": []})
    assert heartbeats.beat_once("beat", extra={"leases": [f"beat#{held.generation}"]})
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.rpush("cron", b"m1", b"m2", b"m3")  # three messages waiting in the cron queue

    page = signed_in(admin_persona).get("/system/")

    assert page.status_code == 200
    html = page.content.decode()
    process = heartbeats.process_id()
    assert f'data-role="worker" data-process="{process}"' in html
    assert f'data-role="beat" data-process="{process}"' in html
    assert f"beat#{held.generation}" in html
    beat_row = re.search(r'<tr data-lease="beat" data-valid="true">.*?</tr>', html, re.S)
    assert beat_row and held.holder in beat_row.group(0) and f"<td>{held.generation}</td>" in beat_row.group(0)
    assert '<tr data-lease="watch:4242" data-valid="false">' in html, "a released lease shows as free"
    assert re.search(r'<tr data-queue="cron"><td>cron</td><td>3</td></tr>', html)
    assert heartbeats.icc_version() in html

    state = signed_in(admin_persona).get("/system/?format=json").json()
    assert {"worker", "beat"} <= set(state["roles"])
    lease = next(item for item in state["leases"] if item["name"] == "beat")
    assert lease["holder"] == held.holder and lease["generation"] == held.generation and lease["valid"] is True
    assert state["queues"]["cron"] == 3 and state["failing"] == []


def test_a_process_that_stops_beating_leaves_the_list(admin_persona):
    assert heartbeats.beat_once("watcher")
    assert any(p["role"] == "watcher" for p in heartbeats.processes())
    heartbeats.forget("watcher")  # a graceful stop; a crash lets the key expire (TTL three beats)
    assert not any(p["role"] == "watcher" for p in heartbeats.processes())
    ttl = redis.Redis.from_url(settings.REDIS_URL)
    heartbeats.beat_once("watcher", interval=5)
    assert 0 < ttl.ttl(heartbeats.heartbeat_key("watcher")) <= 15


@pytest.mark.parametrize("persona", ["operator_persona", "viewer_persona", "outsider_persona"])
def test_everyone_but_admins_is_refused(persona, request):
    lease_acquire("beat", "secret-host:1:beef", 30)
    user = request.getfixturevalue(persona)
    client = signed_in(user)
    for url in ("/system/", "/system/?format=json"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"secret-host" not in response.content
    assert b'href="/system/"' not in client.get("/users/").content, "no link to a page they cannot open"


def test_anonymous_visitors_are_sent_to_log_in():
    response = Client().get("/system/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_admins_find_the_page_under_settings(admin_persona):
    assert b'href="/system/"' in signed_in(admin_persona).get("/users/").content


def test_every_page_shows_a_banner_while_redis_is_down_and_none_when_it_is_back(viewer_persona):
    client = signed_in(viewer_persona)
    assert b"data-dependency-banner" not in client.get("/users/").content
    health._recent.clear()
    with override_settings(REDIS_URL=CLOSED_REDIS, CELERY_BROKER_URL=CLOSED_REDIS):
        html = client.get("/users/").content.decode()
    assert 'data-dependency-banner="redis broker"' in html
    assert "<code>redis</code>" in html and "Connection refused" not in html, "names only, no details"
    health._recent.clear()
    assert b"data-dependency-banner" not in client.get("/users/").content


def test_metrics_name_the_leader_of_each_lease_and_the_roles_running(client):
    held = lease_acquire("beat", holder_id(), 30)
    assert held is not None
    heartbeats.beat_once("worker")
    text = client.get("/metrics").content.decode()
    assert f'icc_leader{{holder="{held.holder}",name="beat"}} 1.0' in text
    assert f'icc_lease_generation{{name="beat"}} {float(held.generation)}' in text
    assert f'icc_role_processes{{role="worker",version="{heartbeats.icc_version()}"}} 1.0' in text
    lease_release(held)
    assert f'holder="{held.holder}"' not in client.get("/metrics").content.decode(), "a released lease has no leader"
