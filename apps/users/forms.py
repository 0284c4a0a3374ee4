from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm

from apps.audit.models import Outcome
from apps.audit.services import Actor, audit_record_outcome
from apps.core import context
from apps.core.middleware import client_ip
from apps.users import throttle

if TYPE_CHECKING:
    _Base = AuthenticationForm
else:
    _Base = object


class LoginThrottleMixin(_Base):
    """Refuses attempts while the account or the address is throttled (:mod:`apps.users.throttle`).

    The attempt is counted before the password is checked, so parallel attempts cannot pass the limit."""

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))
        ip = client_ip(self.request) if self.request else ""
        if not self.cleaned_data.get("password") or self.cleaned_data.get("username") is None:
            # No password will be checked (a field is missing): nothing to count, and surely no success
            # that would clear the account's failures.
            wait = throttle.retry_after(username, ip)
            attempt = throttle.Attempt(username, ip, wait=wait)
        else:
            attempt = throttle.attempt_begin(username, ip)
        if not attempt.allowed:
            audit_record_outcome(
                outcome=Outcome.DENIED,
                action="users.session.login",
                target_type="users.user",
                target_display=username[:255],
                actor=Actor("anonymous", "", username[:150] or "anonymous"),
                message=f"login throttled: too many failures, retry in {attempt.wait} s",
            )
            raise throttled_error(attempt.wait)
        if not attempt.keys:
            return super().clean()  # checks nothing: a field is missing
        try:
            data: dict[str, Any] = super().clean()
        except Exception:  # a wrong password, a refused account, or a crash: counted as a failure
            throttle.attempt_failed(attempt)
            raise
        throttle.attempt_succeeded(attempt)
        return data


def throttled_error(wait: int) -> forms.ValidationError:
    return forms.ValidationError(
        f"Too many failed logins for this account or from this address. Try again in {wait} seconds.",
        code="throttled",
    )


class ThrottledAuthenticationForm(LoginThrottleMixin, AuthenticationForm):
    """Django's login form, throttled."""


class ThrottledAdminAuthenticationForm(LoginThrottleMixin, AdminAuthenticationForm):
    """The admin site's login form (staff only), throttled with the same counts as the portal's."""


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """Checking the current password is a login too: a stolen session must not make it an unlimited oracle.

    Same counts as the login forms (the account, and the client address from the request context)."""

    def clean_old_password(self) -> str:
        attempt = throttle.attempt_begin(self.user.get_username(), context.current().client_ip)
        if not attempt.allowed:
            raise throttled_error(attempt.wait)
        try:
            old_password: str = super().clean_old_password()
        except forms.ValidationError:
            throttle.attempt_failed(attempt)
            audit_record_outcome(
                outcome=Outcome.FAILED,
                action="users.user.password_change",
                target=self.user,
                message="password change refused: wrong current password",
            )
            raise
        throttle.attempt_succeeded(attempt)
        return old_password
