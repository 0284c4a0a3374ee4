"""The channels: e-mail through Django's mail (the SMTP settings), Slack and Microsoft Teams incoming webhooks, and
a generic JSON webhook signed with HMAC-SHA256 (``X-ICC-Signature``, as cron's HTTP target signs).

Every HTTP call goes through a pool whose connections pass ICC's outbound address policy when they connect
(:func:`apps.core.outbound.guard_pool_manager`); no redirects are followed and no proxy from the environment is
used. A channel's answer is kept as a status code and a few words, never the remote body.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from apps.core import crypto, outbound, signing
from apps.notifications.models import Channel, ChannelKind, DeliveryKind, Message

SEVERITY_COLOURS = {"info": "2EB67D", "warning": "ECB22E", "error": "E01E5A", "critical": "8B0000"}
RESOLVED_COLOUR = "2EB67D"


@dataclass(frozen=True)
class Answer:
    ok: bool
    status_code: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Note:
    """What one delivery says: built from the message and the delivery's kind."""

    message: Message
    kind: str  # first, repeat, resolved, test
    sequence: int = 0

    @property
    def title(self) -> str:
        m = self.message
        if self.kind == DeliveryKind.RESOLVED:
            return f"[ICC] Resolved: {m.subject}"
        count = f" (x{m.count})" if m.count > 1 else ""
        still = "Still open: " if self.kind == DeliveryKind.REPEAT else ""
        flag = " [maintenance]" if m.maintenance else ""
        return f"[ICC] {m.severity.upper()}{flag}: {still}{m.subject}{count}"

    @property
    def body(self) -> str:
        m = self.message
        lines = [m.text or m.subject, "", f"Event: {m.kind}", f"Scope: {m.scope.label()}"]
        if m.count > 1:
            lines.append(f"Events grouped: {m.count} since {m.opened_at:%Y-%m-%d %H:%M:%S} UTC")
        if m.maintenance:
            lines.append("Emitted during a maintenance window of its scope.")
        if self.link:
            lines.append(f"Open: {self.link}")
        return "\n".join(lines)

    @property
    def link(self) -> str:
        path = self.message.link
        base = str(getattr(settings, "NOTIFICATIONS_PUBLIC_URL", "") or "").rstrip("/")
        return f"{base}{path}" if path and base and path.startswith("/") else path

    @property
    def colour(self) -> str:
        return (
            RESOLVED_COLOUR if self.kind == DeliveryKind.RESOLVED else SEVERITY_COLOURS.get(self.message.severity, "")
        )

    def data(self) -> dict[str, Any]:
        m = self.message
        return {
            "delivery": self.kind,
            "sequence": self.sequence,
            "message": {
                "id": m.pk,
                "kind": m.kind,
                "severity": m.severity,
                "subject": m.subject,
                "text": m.text,
                "link": self.link,
                "dedup_key": m.dedup_key,
                "count": m.count,
                "state": m.state,
                "maintenance": m.maintenance,
                "scope": {
                    "kind": m.scope_kind,
                    "cluster": m.scope_cluster,
                    "namespace": m.scope_namespace,
                    "application": m.scope_application,
                },
                "opened_at": m.opened_at.isoformat(),
                "last_event_at": m.last_event_at.isoformat(),
                "resolved_at": m.resolved_at.isoformat() if m.resolved_at else None,
            },
        }


# --- payloads as the services document them ---------------------------------------------------------------------


def slack_payload(note: Note) -> dict[str, Any]:
    """Slack incoming webhook: ``text`` (the notification fallback) and Block Kit ``blocks`` (header, section
    in mrkdwn, context)."""
    section = note.message.text or note.message.subject
    if note.link:
        section += f"\n<{note.link}|Open in ICC>"
    return {
        "text": note.title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": note.title[:150], "emoji": False}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section[:3000]}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"{note.message.kind} · {note.message.scope.label()}"[:300]},
                ],
            },
        ],
    }


def teams_payload(note: Note) -> dict[str, Any]:
    """Microsoft Teams incoming webhook: a legacy actionable MessageCard (``@type``, ``@context``, ``summary``,
    ``themeColor``, ``title``, ``text``, ``sections`` with facts, ``potentialAction`` OpenUri)."""
    m = note.message
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": note.title[:200],
        "themeColor": note.colour,
        "title": note.title,
        "text": m.text or m.subject,
        "sections": [
            {
                "facts": [
                    {"name": "Event", "value": m.kind},
                    {"name": "Severity", "value": m.severity},
                    {"name": "Scope", "value": m.scope.label()},
                    {"name": "Count", "value": str(m.count)},
                ]
            }
        ],
    }
    if note.link:
        card["potentialAction"] = [
            {"@type": "OpenUri", "name": "Open in ICC", "targets": [{"os": "default", "uri": note.link}]}
        ]
    return card


# --- sending ---------------------------------------------------------------------------------------------------

_pool: urllib3.PoolManager | None = None


def pool() -> urllib3.PoolManager:
    """One guarded pool per process: every connection passes the outbound policy when it opens."""
    global _pool  # noqa: PLW0603 - one pool per process, made on first use
    if _pool is None:
        _pool = outbound.guard_pool_manager(urllib3.PoolManager(num_pools=32, maxsize=8, retries=False))
    return _pool


def channel_secret(channel: Channel) -> str:
    return crypto.decrypt_text(channel.secret_encrypted, field="secret") if channel.secret_encrypted else ""


def channel_url(channel: Channel) -> str:
    """Where the channel posts: the secret URL for Slack and Teams, ``target`` for the webhook."""
    return channel_secret(channel) if channel.kind in (ChannelKind.SLACK, ChannelKind.TEAMS) else channel.target


def shown_target(url: str) -> str:
    """What may be shown of a secret URL: its scheme and host (the path is the token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


def post_json(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    timeout = float(settings.NOTIFICATIONS_TIMEOUT_SECONDS)
    try:
        response = pool().request(
            "POST",
            url,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "icc-notifications/1", **headers},
            timeout=urllib3.Timeout(connect=min(5.0, timeout), read=timeout),
            retries=False,
            redirect=False,
            preload_content=False,
        )
    except outbound.OutboundRefused as exc:
        return Answer(False, None, f"refused by the outbound address policy: {exc.message}"[:300])
    except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError):
        return Answer(False, None, f"no answer within {timeout:g} s")
    except urllib3.exceptions.HTTPError as exc:
        return Answer(False, None, f"connection failed: {type(exc).__name__}")
    status = response.status
    response.drain_conn()
    response.release_conn()
    ok = 200 <= status < 300
    return Answer(ok, status, "" if ok else f"HTTP {status}")


def idempotency_key(channel: Channel, note: Note) -> str:
    return f"icc-notification-{note.message.pk}-{channel.pk}-{note.kind}-{note.sequence}"


def send_webhook(channel: Channel, note: Note) -> Answer:
    body = orjson.dumps(note.data())
    key = idempotency_key(channel, note)
    headers = {"Idempotency-Key": key}
    secret = channel_secret(channel)
    if secret:
        headers[signing.SIGNATURE_HEADER] = signing.signature(secret.encode(), int(time.time()), key, body)
    return post_json(channel.target, body, headers)


def send_email(addresses: list[str], note: Note) -> Answer:
    if not addresses:
        return Answer(False, None, "no address")
    try:
        connection = get_connection(timeout=int(getattr(settings, "EMAIL_TIMEOUT", 10)))
        sent = EmailMessage(
            note.title[:250], note.body, settings.DEFAULT_FROM_EMAIL, addresses, connection=connection
        ).send()
    except OSError as exc:  # SMTP errors are OSErrors (smtplib.SMTPException subclasses OSError)
        return Answer(False, None, f"mail not accepted: {type(exc).__name__}")
    return Answer(bool(sent), None, "" if sent else "mail not accepted")


def send(channel: Channel | None, recipient: str, note: Note) -> Answer:
    """Send ``note`` to ``channel`` (or, without one, e-mail it to ``recipient``)."""
    if channel is None:
        return send_email([recipient], note)
    if channel.kind == ChannelKind.EMAIL:
        return send_email(channel.addresses(), note)
    if channel.kind == ChannelKind.SLACK:
        return post_json(channel_url(channel), orjson.dumps(slack_payload(note)), {})
    if channel.kind == ChannelKind.TEAMS:
        return post_json(channel_url(channel), orjson.dumps(teams_payload(note)), {})
    return send_webhook(channel, note)
