"""Scanning on demand (real PostgreSQL and Redis): operators with a global grant queue a scan (audited), at most
once a minute; viewers and scoped operators cannot; the page offers the button only to those who may."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.audit.models import AuditEvent
from apps.compliance.services.scans import THROTTLE_KEY
from tests.support.clients import bind, forced_login
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.delete(THROTTLE_KEY)
    yield
    cache.delete(THROTTLE_KEY)


def test_operators_scan_once_a_minute(operator_persona):
    client = forced_login(operator_persona.user)
    assert client.post("/api/v1/compliance/scan/").status_code == 202
    again = client.post("/api/v1/compliance/scan/")
    assert again.status_code == 409
    assert AuditEvent.objects.filter(action="compliance.scan.request").count() == 1
    page = client.get("/compliance/")
    assert b'id="compliance-scan"' in page.content


def test_viewers_and_scoped_operators_cannot_scan(viewer_persona, make_user):
    viewer = forced_login(viewer_persona.user)
    assert viewer.post("/api/v1/compliance/scan/").status_code == 403
    assert b'id="compliance-scan"' not in viewer.get("/compliance/").content
    assert viewer.post("/compliance/scan/").status_code == 403
    scoped = make_user("nina").user
    bind(scoped, "operator", cluster_row("prod"), "shop")
    assert forced_login(scoped).post("/api/v1/compliance/scan/").status_code == 403
    assert not AuditEvent.objects.filter(action="compliance.scan.request").exists()
    assert cache.get(THROTTLE_KEY) is None  # a refused request does not use up the minute
