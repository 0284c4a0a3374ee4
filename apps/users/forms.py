from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from apps.audit.models import Outcome
from apps.audit.services import Actor, audit_record_outcome
from apps.core.middleware import client_ip
from apps.users import throttle


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing attempts while the account or the address is throttled."""

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))
        ip = client_ip(self.request) if self.request else ""
        wait = throttle.retry_after(username, ip)
        if wait:
            audit_record_outcome(
                outcome=Outcome.DENIED,
                action="users.session.login",
                target_type="users.user",
                target_display=username[:255],
                actor=Actor("anonymous", "", username[:150] or "anonymous"),
                message=f"login throttled: too many failures, retry in {wait} s",
            )
            raise forms.ValidationError(
                f"Too many failed logins for this account or from this address. Try again in {wait} seconds.",
                code="throttled",
            )
        try:
            data = super().clean()
        except forms.ValidationError:
            throttle.record_failure(username, ip)
            raise
        throttle.record_success(username)
        return data
