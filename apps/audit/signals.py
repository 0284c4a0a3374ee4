"""Logins, logouts and failed logins become audit events."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from apps.audit.models import Outcome
from apps.audit.services import Actor, audit_record, audit_record_outcome
from apps.core.signals import access_denied


def _session_record(user: Any, action: str, message: str) -> None:
    """A session event, done by the user it concerns."""
    audit_record(action=action, target=user, actor=Actor("user", str(user.pk), user.get_username()), message=message)


@receiver(user_logged_in)
def _login(sender: Any, request: Any, user: Any, **_: Any) -> None:
    _session_record(user, "users.session.login", "logged in")


@receiver(user_logged_out)
def _logout(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        _session_record(user, "users.session.logout", "logged out")


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    username = str(credentials.get("username", ""))[:150]
    audit_record_outcome(
        outcome=Outcome.FAILED,
        action="users.session.login",
        target_type="users.user",
        target_display=username,
        actor=Actor("anonymous", "", username or "anonymous"),
        message="login failed: wrong username or password",
    )


@receiver(access_denied)
def _denied(sender: Any, action: str, target_id: str = "", message: str = "", path: str = "", **_: Any) -> None:
    audit_record_outcome(
        outcome=Outcome.DENIED, action=action, target_id=target_id, message=message, metadata={"path": path}
    )
