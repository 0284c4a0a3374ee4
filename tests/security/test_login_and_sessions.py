"""Security regressions, each written as the attack: the request an attacker sends and the answer ICC gives.

* Login throttling everywhere: the admin login shares the portal's counts, usernames are normalized (NFKC,
  case-folded), and parallel guesses cannot pass the limit.
* Client addresses come from X-Forwarded-For only through a trusted proxy; malformed addresses never lose a
  failed-login event, and a lost audit write is logged and counted in /metrics.
* A junk ServiceAccount token costs one TokenReview, however often it is sent (real kube-apiserver).
* Websockets end with the session: logout, expiry, password change, deactivation, deletion.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

import pytest
import requests
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import DatabaseError, connection
from django.test import Client
from kubernetes import client as k8s
from prometheus_client import REGISTRY

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, Pod
from iccapp.asgi import application
from tests.support.clusters import register
from tests.support.components import free_port
from tests.support.kube import KubeCluster
from tests.support.personas import Persona
from tests.support.server import running_icc

pytestmark = pytest.mark.django_db(transaction=True)

WRONG = "not-the-password-123"
THROTTLED = "Too many failed logins"
ORIGIN = (b"origin", b"http://127.0.0.1")


def login_events(outcome: str) -> int:
    return AuditEvent.objects.filter(action="users.session.login", outcome=outcome).count()


def post_login(c: Client, path: str, username: str, password: str) -> Any:
    return c.post(path, {"username": username, "password": password, "next": "/admin/"})


def logged_in(c: Client) -> bool:
    return "_auth_user_id" in c.session


# --- 9. login throttling everywhere ------------------------------------------------------------------------


@pytest.fixture
def admin_account(make_user: Callable[..., Persona]) -> Persona:
    return make_user("admin", staff=True, superuser=True)


@pytest.mark.parametrize(
    ("guess_paths", "spelling"),
    [
        (["/admin/login/"] * 5, "\uff41dmin"),  # a fullwidth "a": NFKC makes it "admin"
        (["/admin/login/"] * 5, "ADMIN"),
        (["/accounts/login/"] * 3 + ["/admin/login/"] * 2, "admin"),  # portal and admin share one count
    ],
    ids=["fullwidth-on-admin", "uppercase-on-admin", "portal-then-admin"],
)
def test_five_guesses_under_any_spelling_lock_the_admin_login(admin_account, guess_paths, spelling):
    attacker = Client(REMOTE_ADDR="203.0.113.50")
    for path in guess_paths:
        response = post_login(attacker, path, spelling, WRONG)
        assert response.status_code == 200 and THROTTLED not in response.content.decode()
    # The owner, from another address, with the right password: the account is locked, not the address.
    owner = Client(REMOTE_ADDR="198.51.100.20")
    response = post_login(owner, "/admin/login/", "admin", admin_account.password)
    assert response.status_code == 200
    assert THROTTLED in response.content.decode()
    assert not logged_in(owner), "the admin login honours the lock the guesses caused"
    assert login_events("failed") == 5 and login_events("denied") == 1


def test_the_admin_login_still_admits_staff_and_only_staff(admin_account, make_user):
    """The throttled admin form is still the admin form."""
    viewer = make_user("vera", role="viewer")
    c = Client()
    response = post_login(c, "/admin/login/", viewer.username, viewer.password)
    assert response.status_code == 200 and not logged_in(c)
    response = post_login(c, "/admin/login/", "admin", admin_account.password)
    assert response.status_code == 302 and logged_in(c)


def test_an_empty_password_does_not_reset_the_count(admin_account):
    """An attempt without a password checks nothing: it must neither count nor clear the failures (else an
    attacker guesses 4 times, sends an empty password, and guesses 4 more, forever)."""
    addresses = (f"198.18.1.{i}" for i in range(1, 100))  # a botnet: the per-address count never trips
    for _ in range(4):
        post_login(Client(REMOTE_ADDR=next(addresses)), "/accounts/login/", "admin", WRONG)
    for _ in range(3):
        post_login(Client(REMOTE_ADDR=next(addresses)), "/accounts/login/", "admin", "")
    post_login(Client(REMOTE_ADDR=next(addresses)), "/accounts/login/", "admin", WRONG)
    attacker = Client(REMOTE_ADDR=next(addresses))
    response = post_login(attacker, "/accounts/login/", "admin", admin_account.password)
    assert THROTTLED in response.content.decode() and not logged_in(attacker)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_parallel_guesses_cannot_slip_past_the_limit(admin_account, path):
    """20 wrong passwords at once (as many threads, each its own database connection): the password is
    checked at most 5 times; the other 15 are refused before any password check."""
    from apps.users import throttle

    threads_n = 20
    barrier = threading.Barrier(threads_n)
    answers: list[str] = []
    errors: list[BaseException] = []

    def guess(i: int) -> None:
        try:
            c = Client(REMOTE_ADDR=f"198.18.0.{i + 1}")  # one address each: only the account's count can stop them
            barrier.wait(timeout=30)
            answers.append(post_login(c, path, "admin", f"{WRONG}-{i}").content.decode())
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(answers) == threads_n
    evaluated = login_events("failed")
    assert evaluated == throttle.MAX_FAILURES, f"{evaluated} passwords were checked, the limit is 5"
    assert sum(THROTTLED in answer for answer in answers) == threads_n - throttle.MAX_FAILURES
    c = Client()
    response = post_login(c, path, "admin", admin_account.password)
    assert THROTTLED in response.content.decode() and not logged_in(c)


def test_after_the_lock_only_one_parallel_guess_goes_through(monkeypatch):
    """When the 30 s lock runs out, a burst of parallel guesses gets one try, not one each."""
    import time as time_module

    from apps.users import throttle

    now = [2_000_000.0]
    monkeypatch.setattr(time_module, "time", lambda: now[0])
    for _ in range(5):
        throttle.record_failure("admin", "")
    now[0] += throttle.BASE_DELAY_S + 1
    barrier = threading.Barrier(10)
    attempts: list[throttle.Attempt] = []

    def guess(i: int) -> None:
        barrier.wait(timeout=10)
        attempts.append(throttle.attempt_begin("admin", f"198.18.2.{i}"))

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    allowed = [a for a in attempts if a.allowed]
    assert len(attempts) == 10 and len(allowed) == 1
    throttle.attempt_failed(allowed[0])
    assert throttle.retry_after("ADMIN", "") == 2 * throttle.BASE_DELAY_S, "and its failure doubles the wait"


def test_rotating_through_an_ipv6_prefix_does_not_escape_the_address_count(make_user):
    """One host usually holds a whole /64: five guesses from five of its addresses lock the prefix."""
    for i in range(5):
        post_login(Client(REMOTE_ADDR=f"2001:db8:1:2::{i + 1:x}"), "/accounts/login/", f"user-{i}", WRONG)
    other = make_user("bystander", role="viewer")
    same_prefix = Client(REMOTE_ADDR="2001:db8:1:2:ffff::99")
    response = post_login(same_prefix, "/accounts/login/", other.username, other.password)
    assert THROTTLED in response.content.decode() and not logged_in(same_prefix)
    elsewhere = Client(REMOTE_ADDR="2001:db8:1:3::1")
    post_login(elsewhere, "/accounts/login/", other.username, other.password)
    assert logged_in(elsewhere), "another /64 is another client"


def test_a_stolen_session_cannot_guess_the_current_password_without_limit(make_user):
    """The password change form checks the current password: it is throttled like a login."""
    victim = make_user("victim", role="viewer")
    hijacked = Client()
    hijacked.force_login(victim.user)
    new = "Attacker-chosen-Passphrase-77"
    for i in range(5):
        response = hijacked.post(
            "/accounts/password/", {"old_password": f"{WRONG}-{i}", "new_password1": new, "new_password2": new}
        )
        assert response.status_code == 200 and THROTTLED not in response.content.decode()
    response = hijacked.post(
        "/accounts/password/", {"old_password": victim.password, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 200 and THROTTLED in response.content.decode()
    victim.user.refresh_from_db()
    assert victim.user.check_password(victim.password), "the password is unchanged"
    refused = AuditEvent.objects.filter(action="users.user.password_change", outcome="failed")
    assert refused.count() == 5 and refused.first().actor_name == "victim"


# --- 10. client addresses from trusted proxies only ----------------------------------------------------------


def failed_login_from(settings: Any, trusted: list[str], **meta: str) -> AuditEvent:
    settings.TRUSTED_PROXIES = trusted
    response = Client(**meta).post("/accounts/login/", {"username": "mallory", "password": WRONG})
    assert response.status_code == 200
    return AuditEvent.objects.get(action="users.session.login", outcome="failed", actor_name="mallory")


@pytest.mark.parametrize(
    ("trusted", "remote_addr", "forwarded_for", "recorded"),
    [
        # No trusted proxy: the header is the attacker's word and is ignored.
        ([], "203.0.113.7", "1.2.3.4", "203.0.113.7"),
        # A peer outside TRUSTED_PROXIES cannot speak for anyone either.
        (["10.0.0.0/8"], "203.0.113.7", "1.2.3.4", "203.0.113.7"),
        # Through the trusted ingress: the right-most untrusted entry; "6.6.6.6" was written by the client.
        (["10.0.0.0/8"], "10.1.2.3", "6.6.6.6, 198.51.100.9, 10.9.9.9", "198.51.100.9"),
        (["10.0.0.0/8", "2001:db8::/32"], "2001:db8::5", "6.6.6.6, [2001:db8:ffff::1]:443, 2001:db8::7", "6.6.6.6"),
        # Malformed: the failed login is still recorded, with the last address that can be vouched for.
        (["10.0.0.0/8"], "10.1.2.3", "not-an-ip", "10.1.2.3"),
        (["10.0.0.0/8"], "10.1.2.3", "1.2.3.4, garbage, 10.9.9.9", "10.9.9.9"),
        ([], "not-an-ip", "1.2.3.4", None),
        (["0.0.0.0/0"], "unix:/run/icc.sock", "1.2.3.4", None),
        ([], "fe80::1%eth0", "", "fe80::1"),  # a zone id is no part of the address PostgreSQL stores
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(settings, trusted, remote_addr, forwarded_for, recorded):
    event = failed_login_from(settings, trusted, REMOTE_ADDR=remote_addr, HTTP_X_FORWARDED_FOR=forwarded_for)
    assert event.client_ip == recorded


def test_forged_forwarded_for_locks_nobody_else_out(settings, make_user):
    """The throttle counts per address too: a forged header must not pin the attacker's failures on a
    victim's address, nor let the attacker rotate addresses to escape the per-address count."""
    settings.TRUSTED_PROXIES = []
    victim = make_user("victim", role="viewer")
    for i in range(5):
        Client(REMOTE_ADDR="203.0.113.66", HTTP_X_FORWARDED_FOR="198.51.100.1").post(
            "/accounts/login/", {"username": f"nobody-{i}", "password": WRONG}
        )
    from_victims_address = Client(REMOTE_ADDR="198.51.100.1")
    response = post_login(from_victims_address, "/accounts/login/", victim.username, victim.password)
    assert logged_in(from_victims_address), response.content.decode()[:300]
    response = Client(REMOTE_ADDR="203.0.113.66", HTTP_X_FORWARDED_FOR="192.0.2.99").post(
        "/accounts/login/", {"username": "nobody-6", "password": WRONG}
    )
    assert THROTTLED in response.content.decode(), "a new forged address does not reset the attacker's count"


def test_the_web_server_does_not_rewrite_the_peer_from_forwarded_for(tmp_path, collected_static):
    """uvicorn's --proxy-headers trusts 127.0.0.1 by default and would turn this loopback peer into 1.2.3.4;
    ICC's server runs without it, and ICC's middleware (no TRUSTED_PROXIES) ignores the header."""
    with running_icc(tmp_path, collected_static, free_port(), TRUSTED_PROXIES="") as server:
        browser = requests.Session()
        page = browser.get(f"{server.url}/accounts/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        response = browser.post(
            f"{server.url}/accounts/login/",
            data={"username": "mallory", "password": WRONG, "csrfmiddlewaretoken": token.group(1)},
            headers={"X-Forwarded-For": "1.2.3.4"},
            timeout=10,
        )
        assert response.status_code == 200, response.text[:500]
    event = AuditEvent.objects.get(action="users.session.login", outcome="failed", actor_name="mallory")
    assert event.client_ip == "127.0.0.1"


def test_a_lost_audit_write_is_logged_and_counted_in_metrics(settings, monkeypatch, caplog):
    """If the audit trail cannot take a failed login (here: the database refuses the insert), the login is
    still refused, the loss is logged with its cause and counted in /metrics."""
    from apps.audit import services

    def broken_insert(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("could not extend file: No space left on device")

    labels = {"action": "users.session.login"}
    before = REGISTRY.get_sample_value("icc_audit_write_failures_total", labels) or 0.0
    monkeypatch.setattr(services, "_insert", broken_insert)
    caplog.set_level(logging.ERROR, logger="apps.audit.services")
    c = Client(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="garbage")
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    response = c.post("/accounts/login/", {"username": "mallory", "password": WRONG})
    assert response.status_code == 200 and not logged_in(c)
    assert REGISTRY.get_sample_value("icc_audit_write_failures_total", labels) == before + 1
    assert "No space left on device" in caplog.text and "users.session.login" in caplog.text
    monkeypatch.undo()
    settings.METRICS_TOKEN = "metrics-token-for-the-test"
    exposition = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-for-the-test").content.decode()
    assert 'icc_audit_write_failures_total{action="users.session.login"}' in exposition


# --- 11. junk ServiceAccount tokens are negatively cached ---------------------------------------------------


def tokenreviews_served(kube: KubeCluster) -> float:
    """TokenReviews the kube-apiserver has answered, from its own /metrics."""
    response = requests.get(
        f"{kube.url}/metrics", headers={"Authorization": f"Bearer {kube.token}"}, verify=str(kube.ca_path), timeout=10
    )
    response.raise_for_status()
    total = 0.0
    for line in response.text.splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="tokenreviews"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.timeout(45 * 60)  # a cold start builds the Kubernetes binaries (tests/support/kube.py)
def test_a_junk_service_account_token_costs_one_tokenreview(kube_apiserver):

    cluster = register(kube_apiserver)
    junk = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJub2JvZHkifQ." + uuid.uuid4().hex
    before = tokenreviews_served(kube_apiserver)
    answers = [
        Client().get("/api/v1/identity/", HTTP_AUTHORIZATION=f"Bearer {junk}", HTTP_X_ICC_CLUSTER=cluster.name)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert tokenreviews_served(kube_apiserver) - before == 1, "the 2nd and 3rd try must not reach the apiserver"
    assert AuditEvent.objects.filter(action="clusters.identity.authenticate", outcome="failed").count() == 1


# --- 14. websockets end with the session ---------------------------------------------------------------------


class Browser:
    """A signed-in browser: its Django test client and the cookie its websockets send."""

    def __init__(self, persona: Persona) -> None:
        self.persona = persona
        self.client = Client()
        assert self.client.login(username=persona.username, password=persona.password)
        self.session_key = self.client.cookies["sessionid"].value
        self.cookie = (b"cookie", f"sessionid={self.session_key}".encode())


def _logout(browser: Browser) -> None:
    assert browser.client.post("/accounts/logout/").status_code in (200, 302)


def _expire(browser: Browser) -> None:
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=browser.session_key)
    store.load()
    store.set_expiry(1)  # the idle timeout, shortened: the session ends a second from now
    store.save()
    time.sleep(1.2)


def _password_changed_elsewhere(browser: Browser) -> None:
    other = Client()  # the owner, in another browser, after noticing the stolen session
    assert other.login(username=browser.persona.username, password=browser.persona.password)
    new = "Brand-new-Passphrase-2026"
    response = other.post(
        "/accounts/password/",
        {"old_password": browser.persona.password, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302, response.content.decode()[:500]


def _deactivated(browser: Browser) -> None:
    from apps.users.services import user_update

    user_update(user=browser.persona.user, is_active=False)


def _session_deleted(browser: Browser) -> None:
    import_module(settings.SESSION_ENGINE).SessionStore().delete(browser.session_key)


ENDINGS = {
    "logout": _logout,
    "expiry": _expire,
    "password-change": _password_changed_elsewhere,
    "deactivation": _deactivated,
    "session-deleted": _session_deleted,
}
RECHECK = 0.3  # the re-check interval, lowered for the test


async def closed_within(communicator: WebsocketCommunicator, seconds: float) -> dict[str, Any]:
    """The close frame, if it comes within ``seconds`` (other messages on the way are skipped)."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"the websocket was still open {seconds} s after the session ended"
        try:
            output = await communicator.receive_output(timeout=left)
        except TimeoutError:
            continue
        if output["type"] == "websocket.close":
            return output


@pytest.fixture
def operator(make_user: Callable[..., Persona]) -> Persona:
    return make_user("opal", role="operator")


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_the_live_socket_closes_when_the_session_ends(operator, monkeypatch, ending):
    from apps.core import consumers

    monkeypatch.setattr(consumers, "SESSION_RECHECK_SECONDS", RECHECK)
    browser = await sync_to_async(Browser)(operator)
    communicator = WebsocketCommunicator(application, "/ws/?topics=dashboard", headers=[ORIGIN, browser.cookie])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert "dashboard-counters" in await communicator.receive_from(timeout=5)
    assert await communicator.receive_nothing(timeout=3 * RECHECK), "a live session keeps its socket"
    await sync_to_async(ENDINGS[ending])(browser)
    closed = await closed_within(communicator, RECHECK + 2)
    assert closed["code"] == consumers.CLOSE_UNAUTHENTICATED
    again = WebsocketCommunicator(application, "/ws/?topics=dashboard", headers=[ORIGIN, browser.cookie])
    connected, code = await again.connect(timeout=5)
    assert not connected and code == consumers.CLOSE_UNAUTHENTICATED, "and the cookie opens no new one"
    await again.disconnect()
    await communicator.disconnect()


@pytest.fixture
def followed_pod(kube_apiserver: KubeCluster) -> Iterator[Pod]:
    """A pod running on the fake node (whose kubelet serves a log ticking every 0.2 s), known to ICC."""

    api = kube_apiserver.api_client()
    name = f"follow-{uuid.uuid4().hex[:8]}"
    assert kube_apiserver.node is not None
    body = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1PodSpec(
            node_name=kube_apiserver.node.name,
            containers=[k8s.V1Container(name="app", image="registry.example.com/app:1")],
        ),
    )
    k8s.CoreV1Api(api).create_namespaced_pod("default", body)
    cluster = register(kube_apiserver)
    deadline = time.monotonic() + 30
    while kube_apiserver.node.log_lines("default", name, "app") is None:
        assert time.monotonic() < deadline, "the fake node never ran the pod"
        time.sleep(0.1)
    kube_apiserver.node.set_logs("default", name, "app", ["hello"])
    pod = Pod.objects.create(
        cluster=cluster, namespace="default", name=name, uid=uuid.uuid4().hex, containers=[{"name": "app"}]
    )
    yield pod
    k8s.CoreV1Api(api).delete_namespaced_pod(name, "default", grace_period_seconds=0)
    api.close()
    Cluster.objects.filter(pk=cluster.pk).delete()


@pytest.mark.timeout(45 * 60)
@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_the_pod_log_follow_ends_when_the_session_ends(operator, followed_pod, monkeypatch, ending):
    from apps.clusters import consumers

    monkeypatch.setattr(consumers, "RECHECK_SECONDS", RECHECK)
    browser = await sync_to_async(Browser)(operator)
    path = f"/ws/pods/{followed_pod.pk}/logs/?container=app&tail_lines=1"
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, browser.cookie])
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    assert "hello" in await communicator.receive_from(timeout=10)
    deadline = time.monotonic() + 3 * RECHECK
    while time.monotonic() < deadline:  # the follow goes on while the session lives
        assert '"lines"' in await communicator.receive_from(timeout=5)
    await sync_to_async(ENDINGS[ending])(browser)
    started = time.monotonic()
    closed = await closed_within(communicator, RECHECK + 3)
    assert time.monotonic() - started < RECHECK + 3
    assert closed["type"] == "websocket.close"
    await communicator.disconnect()
