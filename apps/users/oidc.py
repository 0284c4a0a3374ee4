"""OpenID Connect login (mozilla-django-oidc), enabled when OIDC_ISSUER or OIDC_OP_AUTHORIZATION_ENDPOINT is set.

* Endpoints come from explicit ``OIDC_OP_*`` settings, else from the issuer's discovery document, fetched
  at first use (not at start-up: ICC starts while the provider is down) and cached for an hour.
* A login is linked to an ICC account by (issuer, subject), stored at the first login. New accounts are named
  by the ``OIDC_USERNAME_CLAIM`` claim (``preferred_username``), else the email when ``email_verified`` is
  true, never a hash. A first login attaches to an existing account of that name only when it has no usable
  password, is no superuser or service account and is linked to no other identity; otherwise it is refused.
* At each login the groups claim is re-applied: the user joins the OIDC teams of their groups (those named in
  ``OIDC_GROUP_ROLES``, or already existing as OIDC teams) and leaves the OIDC teams of groups they lost; a
  mapped team holds a global role binding. Removing someone from a group at the provider removes their
  rights at their next login. Every change is audited in the login's transaction.
* ``OIDC_ONLY`` refuses local passwords for everyone but superusers.
* Logout also ends the provider's session when it publishes an ``end_session_endpoint``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.text import slugify
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from apps.audit.models import ActorKind, Outcome
from apps.audit.services import Actor, audit_record
from apps.core.access import ScopeKind
from apps.users.forms import ThrottledAuthenticationForm
from apps.users.models import OidcIdentity, RoleBinding, Team, User
from apps.users.services import user_create, user_update

logger = logging.getLogger(__name__)

DISCOVERY_TTL = 3600.0
DISCOVERY_KEYS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_END_SESSION_ENDPOINT": "end_session_endpoint",
}
SOURCE = "oidc"
MAX_GROUPS = 500  # a claim larger than this is cut, so one login cannot create thousands of rows


class OIDCDiscoveryError(Exception):
    """The issuer's discovery document could not be read or does not describe this issuer."""


_discovery_lock = threading.Lock()
_discovery: dict[str, Any] = {"issuer": "", "fetched": 0.0, "document": {}}


def provider_metadata() -> dict[str, Any]:
    """The issuer's ``.well-known/openid-configuration`` (cached); empty without OIDC_ISSUER."""
    issuer: str = settings.OIDC_ISSUER
    if not issuer:
        return {}
    with _discovery_lock:
        fresh = time.monotonic() - _discovery["fetched"] < DISCOVERY_TTL
        if _discovery["issuer"] == issuer and fresh:
            return dict(_discovery["document"])
        url = f"{issuer}/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OIDCDiscoveryError(f"cannot read {url}: {exc}") from exc
        if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
            raise OIDCDiscoveryError(f"{url} describes issuer {document.get('issuer')!r}, not OIDC_ISSUER {issuer!r}")
        _discovery.update(issuer=issuer, fetched=time.monotonic(), document=document)
        return dict(document)


def endpoint(name: str) -> str:
    """An ``OIDC_OP_*`` endpoint: the explicit setting, else the discovery document's value."""
    explicit: str = getattr(settings, name, "")
    if explicit:
        return explicit
    return str(provider_metadata().get(DISCOVERY_KEYS[name]) or "")


def email_verified(claims: dict[str, Any]) -> bool:
    return claims.get("email_verified") in (True, "true", "True")


def username_from_claims(claims: dict[str, Any]) -> str:
    """Rule: the configured username claim (preferred_username), else the email when the provider says it is
    verified; never a hash."""
    for claim in (settings.OIDC_USERNAME_CLAIM, "email"):
        value = str(claims.get(claim) or "").strip()
        if value and (claim != "email" or email_verified(claims)):
            return value[:150]
    return ""


def first_login_refusal(user: User) -> str:
    """Why a first single-sign-on login may not attach to the existing account ``user`` ("" when it may).

    Rule: a new (issuer, subject) attaches only to an account that nobody can log in to otherwise: never to
    a superuser, a service account, an account with a usable local password, or one already linked."""
    if user.is_superuser:
        return "is a superuser"
    if user.is_service_account:
        return "is a service account"
    if user.has_usable_password():
        return "has a local password"
    if user.oidc_identities.exists():
        return "is linked to another single-sign-on identity"
    return ""


def oidc_issuer(payload: dict[str, Any]) -> str:
    return str(settings.OIDC_ISSUER or payload.get("iss") or endpoint("OIDC_OP_TOKEN_ENDPOINT")).rstrip("/")


def groups_from_claims(claims: dict[str, Any]) -> list[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(group) for group in value[:MAX_GROUPS]]


def team_name(group: str) -> str:
    return slugify(group)[:100]


# --- the group sync --------------------------------------------------------------------------------------


def _binding_audit(binding: RoleBinding, *, created: bool, actor: Actor, message: str) -> None:
    """Record a binding the group sync created or deleted (its role appears or disappears)."""
    before, after = (None, binding.role) if created else (binding.role, None)
    audit_record(
        action="users.rolebinding.create" if created else "users.rolebinding.delete",
        target=binding,
        changes={"role": {"before": before, "after": after}, "subject": {"before": None, "after": str(binding.team)}},
        actor=actor,
        message=message,
    )


def _team_bindings_sync(team: Team, role: str | None, actor: Actor) -> None:
    """Rule: an OIDC team holds exactly the global binding its group maps to (none when unmapped)."""
    for binding in RoleBinding.objects.filter(team=team, source=SOURCE, scope_kind=ScopeKind.GLOBAL).exclude(
        role=role or ""
    ):
        _binding_audit(
            binding, created=False, actor=actor, message="group no longer mapped to this role (OIDC_GROUP_ROLES)"
        )
        binding.delete()
    if role is None:
        return
    binding, created = RoleBinding.objects.get_or_create(
        role=role,
        team=team,
        user=None,
        scope_kind=ScopeKind.GLOBAL,
        scope_cluster="",
        scope_namespace="",
        scope_application="",
        defaults={"source": SOURCE},
    )
    if created:
        _binding_audit(binding, created=True, actor=actor, message="group mapped by OIDC_GROUP_ROLES")


def _membership_audit(team: Team, user: User, actor: Actor, *, group: str | None) -> None:
    """Record that the group sync added ``user`` to ``team`` (``group``: the claim that did) or, without a group,
    removed them."""
    if group is not None:
        before, after, why = None, user.username, f"is in group {group!r} at the identity provider"
    else:
        before, after, why = user.username, None, "is no longer in this group at the identity provider"
    audit_record(
        action="users.team.membership",
        target=team,
        actor=actor,
        changes={"member": {"before": before, "after": after}},
        message=f"{user.username} {why}",
    )


def oidc_groups_apply(*, user: User, groups: list[str], actor: Actor) -> None:
    """Make ``user``'s OIDC team memberships match ``groups`` (the claim of this login)."""
    mapped = {team_name(group): role for group, role in settings.OIDC_GROUP_ROLES.items()}
    claimed = {team_name(group): group for group in groups if team_name(group)}
    existing = {team.name: team for team in Team.objects.filter(name__in=claimed)}
    wanted: dict[str, Team] = {}
    for name, group in sorted(claimed.items()):
        team = existing.get(name)
        if team is None and name in mapped:
            team, created = Team.objects.get_or_create(
                name=name, defaults={"display_name": group[:150], "source": SOURCE}
            )
            if created:
                changes = {"name": {"before": None, "after": name}, "source": {"before": None, "after": SOURCE}}
                audit_record(action="users.team.create", target=team, actor=actor, changes=changes)
        if team is None:
            continue
        if team.source != SOURCE:
            logger.warning("OIDC group %r matches local team %r: not managed by the provider", group, name)
            continue
        wanted[name] = team
    current = {team.name: team for team in user.teams.filter(source=SOURCE)}
    for name in sorted(set(wanted) - set(current)):
        wanted[name].members.add(user)
        _membership_audit(wanted[name], user, actor, group=claimed[name])
    for name in sorted(set(current) - set(wanted)):
        current[name].members.remove(user)
        _membership_audit(current[name], user, actor, group=None)
    for name, team in {**current, **wanted}.items():
        _team_bindings_sync(team, mapped.get(name), actor)


# --- mozilla-django-oidc integration -------------------------------------------------------------------


class ICCOIDCBackend(OIDCAuthenticationBackend):
    """The code flow's backend: endpoints resolved lazily (discovery), users named by claims, groups synced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No network here: Django builds a backend for every authenticate() and every session's user lookup.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = User

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # the name mozilla-django-oidc reads
        return endpoint("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return endpoint("OIDC_OP_USER_ENDPOINT")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return endpoint("OIDC_OP_JWKS_ENDPOINT")

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        try:
            user: User | None = super().authenticate(request, **kwargs)
        except (requests.RequestException, OIDCDiscoveryError) as exc:
            logger.warning("OpenID Connect login failed: %s", exc)
            return None
        return user

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(username_from_claims(claims))

    def get_username(self, claims: dict[str, Any]) -> str:
        return username_from_claims(claims)

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return User.objects.filter(
            oidc_identities__issuer=oidc_issuer(claims), oidc_identities__subject=str(claims.get("sub") or "")
        )

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User | None:
        """The account of (issuer, subject): found through its stored link, else linked at this first login
        to a new account, or to an existing one only when :func:`first_login_refusal` allows it."""
        subject = str(payload.get("sub") or "")
        if not subject:
            raise SuspiciousOperation("the provider's ID token has no subject")
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if str(userinfo.get("sub", subject)) != subject:
            raise SuspiciousOperation("the provider's userinfo answer belongs to another subject")
        # Some providers put groups in the ID token only: userinfo wins where both have a claim.
        claims = {**payload, **userinfo}
        issuer = oidc_issuer(payload)
        profile = {
            "email": str(claims.get("email") or "")[:254],
            "first_name": str(claims.get("given_name") or "")[:150],
            "last_name": str(claims.get("family_name") or "")[:150],
            "display_name": str(claims.get("name") or "")[:150],
        }
        with transaction.atomic():
            link = OidcIdentity.objects.select_for_update().filter(issuer=issuer, subject=subject).first()
            if link is not None:
                user = User.objects.select_for_update().get(pk=link.user_id)
                if user.is_service_account:
                    raise SuspiciousOperation(f"{user.username!r} is a service account: it cannot log in")
                if not user.is_active:
                    return None
            else:
                found = self._first_login(issuer, subject, claims, profile)
                if found is None:
                    return None
                user = found
            changed = {name: value for name, value in profile.items() if value and getattr(user, name) != value}
            if changed:
                user = user_update(user=user, **changed)  # type: ignore[arg-type]
            actor = Actor(ActorKind.USER, str(user.pk), user.get_username())
            oidc_groups_apply(user=user, groups=groups_from_claims(claims), actor=actor)
        return user

    def _first_login(self, issuer: str, subject: str, claims: dict[str, Any], profile: dict[str, str]) -> User | None:
        username = username_from_claims(claims)
        if not username:
            raise SuspiciousOperation(f"the provider sent neither {settings.OIDC_USERNAME_CLAIM} nor a verified email")
        user = User.objects.select_for_update().filter(username__iexact=username).first()
        if user is not None:
            refusal = first_login_refusal(user)
            if refusal:
                logger.warning("single sign-on refused: the account %r %s", user.username, refusal)
                audit_record(
                    outcome=Outcome.DENIED,
                    action="users.session.login",
                    target=user,
                    actor=Actor("anonymous", "", f"oidc:{subject}"[:150]),
                    message=f"single sign-on identity not linked: the existing account {refusal}",
                )
                return None
            if not user.is_active:
                return None
        else:
            user = user_create(
                username=username,
                password=None,
                email=profile["email"],
                first_name=profile["first_name"],
                last_name=profile["last_name"],
                display_name=profile["display_name"],
            )
        link = OidcIdentity.objects.create(issuer=issuer, subject=subject, user=user)
        audit_record(
            action="users.oidcidentity.link",
            target=user,
            changes={"oidc_identity": {"before": None, "after": str(link)}},
        )
        return user


class ICCAuthenticationRequestView(OIDCAuthenticationRequestView):
    """Starts the code flow; the authorization endpoint may come from discovery."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        View.__init__(self, *args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            self.OIDC_OP_AUTH_ENDPOINT = endpoint("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except OIDCDiscoveryError as exc:
            logger.error("OpenID Connect provider unavailable: %s", exc)
            self.OIDC_OP_AUTH_ENDPOINT = ""
        if not self.OIDC_OP_AUTH_ENDPOINT:
            return HttpResponseRedirect(f"{reverse('login')}?sso=unavailable")
        response: HttpResponse = super().get(request)
        return response


def provider_logout_url(request: HttpRequest) -> str:
    """Where logout sends the browser: the provider's end-session endpoint when the user came through OIDC
    and the provider has one (RP-initiated logout), else ICC's login page."""
    local = resolve_url(settings.LOGOUT_REDIRECT_URL or "/")
    id_token = request.session.get("oidc_id_token")
    if not id_token:
        return local
    try:
        end_session = endpoint("OIDC_OP_END_SESSION_ENDPOINT")
    except OIDCDiscoveryError as exc:
        logger.warning("cannot end the provider session: %s", exc)
        return local
    if not end_session:
        return local
    params = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(local),
    }
    return f"{end_session}{'&' if '?' in end_session else '?'}{urlencode(params)}"


# --- local passwords and the login page ----------------------------------------------------------------


class LocalPasswordBackend(ModelBackend):
    """Django's password backend; with OIDC_ONLY only superusers may use a local password (break-glass)."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and oidc_only() and not user.is_superuser:
            if request is not None:
                request.icc_password_login_refused = True  # type: ignore[attr-defined]
            return None
        return user


def oidc_only() -> bool:
    return bool(settings.OIDC_ENABLED and settings.OIDC_ONLY)


REFUSED_MESSAGE = "Password login is turned off for this account: log in with single sign-on."


class LoginForm(ThrottledAuthenticationForm):
    """The login form, saying why a correct password was refused in OIDC-only mode."""

    def get_invalid_login_error(self) -> ValidationError:
        if getattr(self.request, "icc_password_login_refused", False):
            return ValidationError(REFUSED_MESSAGE, code="oidc_only")
        error: ValidationError = super().get_invalid_login_error()
        return error


SSO_MESSAGES = {
    "failed": "Single sign-on did not complete. Try again, or ask an administrator.",
    "unavailable": "The single sign-on provider cannot be reached right now.",
}


class LoginView(auth_views.LoginView):
    """Password and single sign-on; in OIDC-only mode the password form shows only with ``?local=1``."""

    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        context["oidc_enabled"] = settings.OIDC_ENABLED
        context["password_login"] = not oidc_only() or "local" in self.request.GET or self.request.method == "POST"
        context["sso_message"] = SSO_MESSAGES.get(self.request.GET.get("sso", ""), "")
        return context
