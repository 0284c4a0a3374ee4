"""Security item 4 against the real OpenID Connect provider: a chosen ``preferred_username`` never logs in as
the bootstrap superuser; the login is refused and audited, and the admin account stays unlinked."""

from __future__ import annotations

from urllib.parse import urljoin

import requests

from tests.support.oidc import form_of


def test_oidc_first_login_cannot_take_over_the_bootstrap_admin(icc_oidc, oidc_provider):
    from apps.audit.models import AuditEvent
    from apps.users.models import OidcIdentity, User
    from apps.users.services import user_create

    admin = user_create(username="admin", password="Bootstrap-admin-pass-42", is_superuser=True)
    oidc_provider.set_account("mallory", {"preferred_username": "ADMIN", "email": "mallory@evil.test"})

    session = requests.Session()
    response = session.get(f"{icc_oidc.url}/oidc/authenticate/", timeout=10)
    action, fields = form_of(response.text)
    response = session.post(
        urljoin(response.url, action), data={**fields, "login": "mallory", "password": "x"}, timeout=10
    )
    if "/interaction/" in response.url:
        action, fields = form_of(response.text)
        response = session.post(urljoin(response.url, action), data=fields, timeout=10)
    assert "sso=failed" in response.url, response.url
    assert session.get(f"{icc_oidc.url}/api/v1/users/", timeout=10).status_code in {401, 403}
    assert not OidcIdentity.objects.filter(user=admin).exists()
    assert User.objects.filter(username__iexact="admin").count() == 1
    assert AuditEvent.objects.filter(action="users.session.login", outcome="denied", target_id=str(admin.pk)).exists()
