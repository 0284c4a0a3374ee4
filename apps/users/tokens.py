"""API tokens: created (shown once), authenticated by hash, narrowed, revoked — each step audited."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.models import Outcome
from apps.audit.services import Actor, audit_record, audit_record_outcome
from apps.core.access import Grant, Role, Scope, ScopeKind, grants, narrow
from apps.core.errors import DomainError
from apps.users import notify
from apps.users.models import ApiToken, User

TOKEN_PREFIX = "icc_"  # noqa: S105 - the public marker of ICC tokens, not a secret
DEFAULT_LIFETIME = timedelta(days=90)
MAX_LIFETIME = timedelta(days=366)
USE_RECORD_INTERVAL = timedelta(minutes=1)
SEEN_ADDRESSES_KEPT = 50


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_limits(raw: Any) -> list[Grant]:
    """``[{"role": "viewer", "scope_kind": "cluster", "cluster": "c1"}, ...]`` → grants; errors name the field."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise DomainError("must be a list of {role, scope_kind, cluster, namespace, application}", field="restrictions")
    limits: list[Grant] = []
    for index, item in enumerate(raw):
        field = f"restrictions[{index}]"
        if not isinstance(item, dict):
            raise DomainError("must be an object", field=field)
        unknown = set(item) - {"role", "scope_kind", "cluster", "namespace", "application"}
        if unknown:
            raise DomainError(f"unknown key {sorted(unknown)[0]!r}", field=field)
        if item.get("role") not in Role.values:
            raise DomainError(f"unknown role {item.get('role')!r}; one of {', '.join(Role.values)}", field=field)
        kind = item.get("scope_kind", ScopeKind.GLOBAL)
        if kind not in ScopeKind.values:
            raise DomainError(f"unknown scope_kind {kind!r}", field=field)
        scope = Scope(
            kind, str(item.get("cluster", "")), str(item.get("namespace", "")), str(item.get("application", ""))
        )
        if scope.unused_coordinate():
            raise DomainError(f"a {kind} scope names no {scope.unused_coordinate()}", field=field)
        if kind != ScopeKind.GLOBAL and not scope.cluster:
            raise DomainError("a non-global scope needs a cluster", field=field)
        if kind == ScopeKind.NAMESPACE and not scope.namespace:
            raise DomainError("a namespace scope needs a namespace", field=field)
        if kind == ScopeKind.APPLICATION and not scope.application:
            raise DomainError("an application scope needs an application", field=field)
        limits.append((item["role"], scope))
    return limits


def limits_json(limits: list[Grant]) -> list[dict[str, str]]:
    return [
        {
            "role": role,
            "scope_kind": s.kind,
            "cluster": s.cluster,
            "namespace": s.namespace,
            "application": s.application,
        }
        for role, s in limits
    ]


def token_create(
    *, owner: User, name: str, by: User, expires_at: datetime | None = None, restrictions: Any = None
) -> tuple[ApiToken, str]:
    """Create a token for ``owner`` (the caller, or a service account); returns it with its one-time secret.

    Rule: a token never exceeds the token that made it. When ``by`` authenticated with an API token, the
    new token's restrictions must lie inside that token's (a wider one is refused naming ``restrictions``;
    none given means the caller token's own), and it expires no later than the caller token."""
    now = timezone.now()
    caller: ApiToken | None = getattr(by, "_icc_token", None)
    caller_limits = parse_limits(caller.restrictions) if caller is not None else []
    if expires_at is None:
        expires_at = now + DEFAULT_LIFETIME
        if caller is not None:
            expires_at = min(expires_at, caller.expires_at)
    if expires_at <= now:
        raise DomainError("must be in the future", field="expires_at")
    if expires_at > now + MAX_LIFETIME:
        raise DomainError("must be at most 366 days ahead", field="expires_at")
    if caller is not None and expires_at > caller.expires_at:
        raise DomainError("must not be later than the expiry of the token making it", field="expires_at")
    if not name.strip():
        raise DomainError("must not be empty", field="name")
    limits = parse_limits(restrictions)
    if caller_limits:
        if not limits:
            limits = caller_limits
        elif len(narrow(caller_limits, limits)) != len(limits):
            raise DomainError("a token cannot have rights the token making it lacks", field="restrictions")
    if limits and len(narrow(grants(owner), limits)) != len(limits) and not owner.is_superuser:
        raise DomainError("a token cannot have rights its owner lacks", field="restrictions")
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=owner,
            name=name.strip()[:100],
            prefix=prefix,
            token_hash=_hash(secret),
            restrictions=limits_json(limits),
            expires_at=expires_at,
            created_by=by,
        )
        audit_record(
            action="users.token.create",
            target=token,
            changes={
                "name": {"before": None, "after": token.name},
                "expires_at": {"before": None, "after": expires_at.isoformat()},
                "restrictions": {"before": None, "after": token.restrictions},
            },
            metadata={"owner": owner.get_username(), "prefix": prefix},
        )
        notify.token_created(token, by=by)
    return token, secret


def token_revoke(*, token: ApiToken, by: User) -> ApiToken:
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            audit_record(action="users.token.revoke", target=token, metadata={"prefix": token.prefix})
    token.refresh_from_db()
    return token


def token_authenticate(raw: str, ip: str) -> tuple[User, ApiToken] | None:
    """The owner and token for a presented secret, or None. Records use (and audits a new address)."""
    if not raw.startswith(TOKEN_PREFIX) or raw.count("_") < 2:
        return None
    prefix = raw[len(TOKEN_PREFIX) :].split("_", 1)[0]
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.token_hash, _hash(raw)):
        return None
    now = timezone.now()
    if token.revoked_at or token.expires_at <= now or not token.user.is_active:
        audit_record_outcome(
            outcome=Outcome.DENIED,
            action="users.token.use",
            target=token,
            actor=Actor("token", prefix, token.user.get_username()),
            message="revoked" if token.revoked_at else "expired" if token.expires_at <= now else "owner inactive",
        )
        return None
    new_ip = bool(ip) and ip != (token.last_used_ip or "")
    if new_ip or token.last_used_at is None or now - token.last_used_at > USE_RECORD_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip or None)
        if new_ip:
            audit_record(
                action="users.token.use_new_ip",
                target=token,
                actor=Actor(
                    "service_account" if token.user.is_service_account else "token", prefix, token.user.get_username()
                ),
                metadata={"previous_ip": token.last_used_ip or "", "ip": ip},
            )
    seen = list(token.seen_ips or [])
    if ip and ip not in seen:
        _remember_address(token, ip, seen)
    user = token.user
    user._icc_token = token  # type: ignore[attr-defined]
    user._icc_token_limits = parse_limits(token.restrictions)  # type: ignore[attr-defined]
    return user, token


def _remember_address(token: ApiToken, ip: str, seen: list[str]) -> None:
    """Add ``ip`` to the token's known addresses (compare-and-swap on the list read, so of parallel first uses from
    one address only one announces it); a token's first address is only remembered, any later new one is announced
    (``users.token_new_address``). Known addresses cost no write: this runs only for an address not in the list."""
    remembered = [*seen, ip][-SEEN_ADDRESSES_KEPT:]
    if not ApiToken.objects.filter(pk=token.pk, seen_ips=seen).update(seen_ips=remembered):
        return  # another request changed the list meanwhile: it announced (or remembered) what it saw
    token.seen_ips = remembered
    if seen:
        notify.token_new_address(token, ip=ip, known=seen)
