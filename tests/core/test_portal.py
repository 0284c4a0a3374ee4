"""The portal shell: login, navigation, dashboard, admin branding, error pages."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from apps.core import views
from apps.core.registry import navigation

pytestmark = pytest.mark.django_db


def test_pages_require_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_wrong_password_shows_an_error_not_a_crash(client, viewer_persona):
    response = client.post("/accounts/login/", {"username": viewer_persona.username, "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_login_dashboard_navigation_and_logout(client, viewer_persona):
    response = client.post(
        "/accounts/login/", {"username": viewer_persona.username, "password": viewer_persona.password}
    )
    assert response.status_code == 302
    html = client.get("/").content.decode()
    assert "<h1>Dashboard</h1>" in html
    assert 'id="counter-users"' in html
    assert 'ws-connect="/ws/?topics=dashboard"' in html, "the dashboard subscribes to its live topic"
    items = navigation()
    assert [item.key for item in items] == [
        "dashboard",
        "clusters",
        "applications",
        "scaler",
        "cron",
        "compliance",
        "traffic",
        "notifications",
        "calendar",
        "audit",
        "users",
    ], "every app registers its area, in menu order"
    for item in items:
        label, url = item.label, item.url
        assert f'href="{url}"' in html, label
        page = client.get(url)
        assert page.status_code == 200, url
    assert client.get("/fragments/dashboard/counters/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_unknown_pages_get_the_real_404_page(client, viewer_persona):
    client.login(username=viewer_persona.username, password=viewer_persona.password)
    response = client.get("/no-such-area/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "404 · Not found" in html and "/no-such-area/" in html


def test_403_and_500_pages_are_ours():
    request = RequestFactory().get("/x")
    request.request_id = "rid-500"
    response = views.error_500(request)
    assert response.status_code == 500
    assert b"rid-500" in response.content
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    response = views.error_403(request)
    assert response.status_code == 403
    assert "403 · Not allowed" in response.content.decode()


def test_an_unhandled_error_renders_the_500_page(admin_persona, monkeypatch):
    client = Client(raise_request_exception=False)
    client.login(username=admin_persona.username, password=admin_persona.password)

    def explode() -> list[dict[str, object]]:
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "dashboard_counters", explode)
    response = client.get("/", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert b"boom-1" in response.content


def test_admin_is_branded_icc(client, admin_persona):
    client.login(username=admin_persona.username, password=admin_persona.password)
    html = client.get("/admin/").content.decode()
    assert "ICC administration" in html
    assert client.get("/admin/users/user/").status_code == 200


def test_non_staff_cannot_enter_the_admin(client, viewer_persona):
    client.login(username=viewer_persona.username, password=viewer_persona.password)
    assert client.get("/admin/").status_code == 302


def test_login_is_throttled_after_five_failures(client, viewer_persona):
    from apps.audit.models import AuditEvent

    for _ in range(5):
        response = client.post("/accounts/login/", {"username": viewer_persona.username, "password": "nope"})
        assert "Please enter a correct username" in response.content.decode()
    response = client.post(
        "/accounts/login/", {"username": viewer_persona.username, "password": viewer_persona.password}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Too many failed logins" in html
    assert "Try again in 30 seconds" in html or "Try again in 29 seconds" in html
    assert "_auth_user_id" not in client.session, "even the right password waits out the lock"
    assert AuditEvent.objects.filter(outcome="denied", message__startswith="login throttled").count() == 1
    assert AuditEvent.objects.filter(outcome="failed", action="users.session.login").count() == 5


def test_throttling_also_counts_per_address(client, make_user):
    for i in range(5):
        client.post("/accounts/login/", {"username": f"ghost-{i}", "password": "nope"})
    other = make_user("fresh-account", role="viewer")
    response = client.post("/accounts/login/", {"username": other.username, "password": other.password})
    assert "Too many failed logins" in response.content.decode()


def test_the_delay_grows_with_more_failures(monkeypatch):
    import time as time_module

    from apps.users import throttle

    now = [1_000_000.0]
    monkeypatch.setattr(time_module, "time", lambda: now[0])
    for _ in range(5):
        throttle.record_failure("dana", "10.9.9.9")
    assert throttle.retry_after("dana", "") == 30
    now[0] += 31
    assert throttle.retry_after("dana", "") == 0
    throttle.record_failure("dana", "")
    assert throttle.retry_after("dana", "") == 60
    throttle.record_success("dana")
    assert throttle.retry_after("dana", "") == 0


def test_sessions_carry_the_idle_timeout(client, viewer_persona, settings):
    client.login(username=viewer_persona.username, password=viewer_persona.password)
    client.get("/")
    assert client.session.get_expiry_age() <= settings.SESSION_IDLE_TIMEOUT
    assert "_icc_seen" in client.session
