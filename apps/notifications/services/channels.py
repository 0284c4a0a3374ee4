"""Channel services: create, update, delete, send a test. Secrets (the Slack/Teams URL, the webhook's signing key)
are encrypted at rest, never returned, never audited (only that one was set). URLs pass the outbound address
policy when saved (and again at every connection)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from apps.audit.services import audit_record
from apps.core import crypto
from apps.core.access import GLOBAL, Action, can_at
from apps.core.errors import ConflictError, DomainError, ForbiddenError
from apps.core.outbound import check_outbound_url
from apps.notifications.channels import Answer, Note, send, shown_target
from apps.notifications.models import Channel, ChannelKind, Event, Message

FIELDS = ("name", "kind", "target", "max_per_minute", "enabled")


def check_configure(by: Any, what: str) -> None:
    """Rule: notification channels and rules are global configuration (admins with a global grant)."""
    if by is not None and not can_at(by, Action.CONFIGURE, GLOBAL):
        raise ForbiddenError(f"{what} needs the configure right at global scope")


def _validate(channel: Channel, secret: str | None) -> None:
    if not channel.name.strip():
        raise DomainError("a channel needs a name", field="name")
    if channel.kind not in ChannelKind.values:
        raise DomainError(f"unknown channel kind {channel.kind!r}", field="kind")
    if not 1 <= channel.max_per_minute <= 10000:
        raise DomainError("max_per_minute must be between 1 and 10000", field="max_per_minute")
    if channel.kind == ChannelKind.EMAIL:
        addresses = channel.addresses()
        if not addresses:
            raise DomainError("an e-mail channel needs at least one address", field="target")
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise DomainError(f"{address!r} is not an e-mail address", field="target") from None
        channel.target = ", ".join(addresses)
    elif channel.kind in (ChannelKind.SLACK, ChannelKind.TEAMS):
        if secret is not None:
            check_outbound_url(secret, field="secret")
            channel.target = shown_target(secret)
        elif not channel.secret_encrypted:
            raise DomainError("the incoming webhook URL (secret) is required", field="secret")
    else:
        check_outbound_url(channel.target, field="target")


def _store_secret(channel: Channel, secret: str | None) -> None:
    if secret is not None:
        channel.secret_encrypted = crypto.encrypt_text(secret) if secret else None


def _audit(channel: Channel, verb: str, changed: list[str], secret_set: bool) -> None:
    audit_record(
        action=f"notifications.channel.{verb}",
        target=channel,
        changes={"fields": changed, **({"secret": "set"} if secret_set else {})},
        scope={},
    )


def channel_create(*, by: Any = None, secret: str | None = None, **values: Any) -> Channel:
    check_configure(by, "creating a notification channel")
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise DomainError(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
    channel = Channel(**values)
    _validate(channel, secret or None)
    _store_secret(channel, secret or None)
    try:
        with transaction.atomic():
            channel.save()
            _audit(channel, "create", sorted(values), bool(secret))
    except IntegrityError:
        raise ConflictError(f"a channel named {channel.name!r} exists", field="name") from None
    return channel


def channel_update(*, channel: Channel, by: Any = None, secret: str | None = None, **values: Any) -> Channel:
    """Change fields; ``secret`` None keeps the stored one, "" removes it (webhook signing), a value replaces it."""
    check_configure(by, "changing a notification channel")
    for key, value in values.items():
        if key not in FIELDS:
            raise DomainError(f"unknown field {key}", field=key)
        setattr(channel, key, value)
    _validate(channel, secret or None)
    _store_secret(channel, secret)
    try:
        with transaction.atomic():
            channel.save()
            _audit(channel, "update", sorted(values), secret is not None)
    except IntegrityError:
        raise ConflictError(f"a channel named {channel.name!r} exists", field="name") from None
    return channel


def channel_delete(*, channel: Channel, confirm: str, by: Any = None) -> None:
    check_configure(by, "deleting a notification channel")
    if confirm != channel.name:
        raise DomainError("type the channel's name to confirm", field="confirm")
    with transaction.atomic():
        audit_record(action="notifications.channel.delete", target=channel, scope={})
        channel.delete()


def channel_test(*, channel: Channel, by: Any = None) -> Answer:
    """Send a test message through the channel now (not recorded as a delivery; audited)."""
    check_configure(by, "testing a notification channel")
    from django.utils import timezone

    now = timezone.now()
    event = Event(
        kind="notifications.test",
        severity="info",
        subject=f"test of channel {channel.name}",
        at=now,
        dedup_key="notifications.test",
    )
    message = Message(
        pk=0,
        kind=event.kind,
        severity="info",
        subject=event.subject,
        first_event=event,
        last_event=event,
        text="A test message from ICC: this channel works.",
        opened_at=now,
        last_event_at=now,
        dedup_key=event.dedup_key,
    )
    answer = send(channel, "", Note(message, "test"))
    audit_record(
        action="notifications.channel.test",
        target=channel,
        outcome="success" if answer.ok else "failed",
        message=(f"HTTP {answer.status_code}" if answer.status_code else "")
        + (f" {answer.reason}" if answer.reason else ""),
        scope={},
    )
    return answer
