"""The admission webhook's API and portal pages (real PostgreSQL): readers of a cluster see its settings with the
token masked; only configure rights on the cluster change them, download the configuration (recorded) or remove
it (typed name); an operator scoped to another cluster sees nothing of this one; bad input names the field."""

from __future__ import annotations

import pytest
import yaml

from apps.audit.models import AuditEvent
from apps.compliance.models import AdmissionWebhook
from apps.compliance.services import webhooks
from apps.users.models import RoleBinding
from tests.support.clients import error_fields, forced_login
from tests.support.rows import cluster_row

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "https://icc.example.com"


@pytest.fixture
def hook(settings):
    settings.COMPLIANCE_WEBHOOK_URL = BASE
    return webhooks.webhook_configure(cluster=cluster_row("prod"))


def test_readers_see_settings_without_the_token(hook, viewer_persona):
    client = forced_login(viewer_persona.user)
    listed = client.get("/api/v1/compliance/webhooks/").json()["results"]
    assert [w["cluster_name"] for w in listed] == ["prod"]
    assert listed[0]["address"].startswith(f"{BASE}/compliance/admission/{hook.cluster_id}/<token")
    assert hook.token() not in str(listed)
    page = client.get(f"/compliance/webhooks/{hook.cluster_id}/")
    assert page.status_code == 200 and hook.token() not in page.content.decode()
    assert b"webhook-preview" in page.content and b"webhook-apply" not in page.content  # no buttons for readers
    # Readers may not download (the file carries the token), change or remove it.
    assert client.get(f"/api/v1/compliance/webhooks/{hook.pk}/configuration/").status_code == 403
    assert client.get(f"/compliance/webhooks/{hook.cluster_id}/configuration.yaml").status_code == 403
    assert (
        client.patch(
            f"/api/v1/compliance/webhooks/{hook.pk}/", {"failure_policy": "Fail"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert client.post(f"/compliance/webhooks/{hook.cluster_id}/rotate/").status_code == 403
    hook.refresh_from_db()
    assert hook.failure_policy == "Ignore" and hook.token_generation == 1


def test_a_user_scoped_to_another_cluster_sees_nothing(hook, make_user):
    other = cluster_row("staging")
    user = make_user("stella").user
    RoleBinding.objects.create(user=user, role="admin", scope_kind="cluster", scope_cluster=str(other.pk))
    client = forced_login(user)
    assert client.get("/api/v1/compliance/webhooks/").json()["results"] == []
    assert client.get(f"/api/v1/compliance/webhooks/{hook.pk}/").status_code == 404
    assert client.get(f"/compliance/webhooks/{hook.cluster_id}/").status_code == 404
    created = client.post("/api/v1/compliance/webhooks/", {"cluster": hook.cluster_id}, content_type="application/json")
    assert created.status_code == 400 and "cluster" in error_fields(created)


def test_admins_configure_download_rotate_and_remove(hook, admin_persona):
    client = forced_login(admin_persona.user)
    bad = client.patch(
        f"/api/v1/compliance/webhooks/{hook.pk}/", {"timeout_seconds": 99}, content_type="application/json"
    )
    assert bad.status_code == 400 and "timeout_seconds" in error_fields(bad)
    changed = client.patch(
        f"/api/v1/compliance/webhooks/{hook.pk}/", {"failure_policy": "Fail"}, content_type="application/json"
    )
    assert changed.status_code == 200 and changed.json()["failure_policy"] == "Fail"
    downloaded = client.get(f"/api/v1/compliance/webhooks/{hook.pk}/configuration/?output=yaml")
    assert downloaded.status_code == 200
    manifest = yaml.safe_load(downloaded.content)
    assert manifest["webhooks"][0]["clientConfig"]["url"].endswith(hook.token())
    assert manifest["webhooks"][0]["failurePolicy"] == "Fail"
    assert client.get(f"/api/v1/compliance/webhooks/{hook.pk}/configuration/?output=xml").status_code == 400
    rotated = client.post(f"/api/v1/compliance/webhooks/{hook.pk}/rotate-token/")
    assert rotated.status_code == 200
    hook.refresh_from_db()
    assert hook.token_generation == 2
    page = client.post(f"/compliance/webhooks/{hook.cluster_id}/", {"failure_policy": "Ignore", "timeout_seconds": 0})
    assert page.status_code == 400  # the form names the field; nothing changed
    hook.refresh_from_db()
    assert hook.failure_policy == "Fail"
    refused = client.delete(f"/api/v1/compliance/webhooks/{hook.pk}/?confirm=wrong")
    assert refused.status_code == 400 and "confirm" in error_fields(refused)
    assert AdmissionWebhook.objects.filter(pk=hook.pk).exists()
    actions = set(AuditEvent.objects.filter(action__startswith="compliance.webhook.").values_list("action", flat=True))
    assert {"compliance.webhook.configure", "compliance.webhook.download", "compliance.webhook.rotate"} <= actions


def test_without_an_address_the_page_says_which_setting_is_missing(admin_persona, settings):
    settings.COMPLIANCE_WEBHOOK_URL = ""
    settings.COMPLIANCE_WEBHOOK_SERVICE = ""
    hook = webhooks.webhook_configure(cluster=cluster_row("prod"))
    client = forced_login(admin_persona.user)
    page = client.get(f"/compliance/webhooks/{hook.cluster_id}/")
    assert b"COMPLIANCE_WEBHOOK_URL" in page.content and b"webhook-apply" not in page.content
    assert client.get("/compliance/webhooks/").status_code == 200
