"""Users' domain events about API tokens and logins: ``users.token_created`` (info) when a token is made,
``users.token_new_address`` (warning) when a token is used from an address it was never used from before (its
first address is only remembered), and ``users.login_throttled`` (warning) when failed logins lock an account
name or a client address, resolved by ``users.login_unthrottled`` when that account logs in again. Security
events: global scope (those who administer ICC), linked to the tokens page or the audit trail."""

from __future__ import annotations

from typing import Any

from apps.core.access import Scope
from apps.core.domain_events import DomainEvent, Severity, emit


def token_created(token: Any, *, by: Any) -> None:
    owner = token.user.get_username()
    maker = by.get_username() if by is not None else "ICC"
    emit(
        DomainEvent(
            kind="users.token_created",
            severity=Severity.INFO,
            subject=f"API token {token.prefix} of {owner}",
            text=(
                f"{maker} created API token {token.name!r} ({token.prefix}…) for {owner}, "
                f"expiring {token.expires_at:%Y-%m-%d %H:%M}Z"
                + (" with restrictions." if token.restrictions else " with its owner's full rights.")
            )[:1000],
            scope=Scope(),
            link="/users/tokens/",
            dedup_key=f"users.token_created:{token.pk}",
        )
    )


def token_new_address(token: Any, *, ip: str, known: list[str]) -> None:
    owner = token.user.get_username()
    emit(
        DomainEvent(
            kind="users.token_new_address",
            severity=Severity.WARNING,
            subject=f"API token {token.prefix} of {owner}",
            text=(
                f"API token {token.name!r} ({token.prefix}…) of {owner} was used from {ip}, an address it was never "
                f"used from before (known: {', '.join(known[-5:])}). Revoke it if that was not its owner."
            )[:1000],
            scope=Scope(),
            link=f"/audit/history/users.apitoken/{token.pk}/",
            dedup_key=f"users.token_new_address:{token.pk}",
        )
    )


def login_throttled(*, what: str, key: str, who: str, wait: int, failures: int) -> None:
    """``what`` is ``account`` or ``address``; ``key`` identifies it without echoing a password or a hash input."""
    emit(
        DomainEvent(
            kind="users.login_throttled",
            severity=Severity.WARNING,
            subject=f"logins of {what} {who}",
            text=(
                f"{failures} failed logins: further attempts for {what} {who} are refused for {wait} s "
                "(longer with every further failure)."
            )[:1000],
            scope=Scope(),
            link="/audit/?action=users.session.login",
            dedup_key=f"users.login_throttled:{what}:{key}",
        )
    )


def login_unthrottled(*, key: str, who: str) -> None:
    emit(
        DomainEvent(
            kind="users.login_unthrottled",
            severity=Severity.INFO,
            subject=f"logins of account {who}",
            text=f"Account {who} logged in successfully after being throttled.",
            scope=Scope(),
            link="/audit/?action=users.session.login",
            dedup_key=f"users.login_throttled:account:{key}",
            resolves=True,
        )
    )
